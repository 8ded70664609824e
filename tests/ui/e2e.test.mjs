// The admin UI in a real browser (Debian's chromium, driven by playwright-core)
// against the real gateway and the fake upstream. One story, step by step:
// sign in; create a channel with a Daily Token Limit of 1000 and a key bound
// to it, both through the UI; relay until the channel is capped; the overview
// and the channel list show it capped at 100% and the key gets 429; reset
// today's usage through the UI and the bar is back at 0; a bad limit (-5)
// shows its field error and saves nothing; the UI in zh-CN and zh-TW.
//
// The UI is driven only through what a user sees and the `data-testid`s listed
// in ui/TESTIDS.md. The admin API (with the Bearer token) is used only to
// check what the UI did. Waits are bounded polls, never sleeps.
// Screenshots of every page go to SLUICEGATE_UI_SCREENSHOTS.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";

import { ADMIN_TOKEN, admin, eventually, relay, startServers } from "./harness.mjs";

const CHROMIUM = process.env.SLUICEGATE_CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.SLUICEGATE_UI_SCREENSHOTS || join(process.cwd(), "screenshots");
const LOCALES = process.env.SLUICEGATE_UI_SOURCE
  ? join(process.env.SLUICEGATE_UI_SOURCE, "locales")
  : new URL("../../ui/src/locales/", import.meta.url).pathname;
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
// Playwright's own waits (a locator's click, fill, waitFor) give up after this.
const UI_MS = 15_000;

const CHANNEL = "capped-e2e";
const MODEL = "gpt-4o-mini";
const LIMIT = 1000;
// The fake upstream reports 18 total tokens per request (tests/it/support/upstream).
const PER_REQUEST = 18;
const KEY_NAME = "bound-e2e";

const dict = (lang) => JSON.parse(readFileSync(join(LOCALES, `${lang}.json`), "utf8"));

let servers;
let browser;
let page;
const pageErrors = [];
// Filled in as the story goes.
let channelId;
let clientKey;
// Every relay request the test sent, for the overview's 24 h totals.
const sent = { requests: 0, errors: 0, tokens: 0 };

/** One chat completion with the bound key, counted in `sent`. */
async function send() {
  const reply = await relay(servers.url, clientKey, MODEL);
  sent.requests += 1;
  if (reply.status >= 400) sent.errors += 1;
  else sent.tokens += reply.body.usage.total_tokens;
  return reply;
}

// The steps share state: once one fails, the later ones are skipped rather
// than failing for the same cause.
let broken = false;
function step(name, body) {
  it(name, async (t) => {
    if (broken) return t.skip("an earlier step failed");
    try {
      await body(t);
    } catch (error) {
      broken = true;
      t.diagnostic(`gateway log, last lines:\n${servers?.logs() ?? "(not started)"}`);
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`).catch(() => {});
      throw error;
    }
  });
}

const byTestId = (id) => page.getByTestId(id);
const channelRow = () => page.locator(`[data-testid="channel-row"][data-channel-name="${CHANNEL}"]`);
const overviewRow = () =>
  page.locator(`[data-testid="overview-usage-row"][data-channel-name="${CHANNEL}"]`);

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Navigates with the app's own nav link (client-side routing). */
async function go(route, pageTestId) {
  await byTestId(`nav-${route}`).click();
  await byTestId(pageTestId).waitFor();
}

/** Waits until the usage bar under `scope` shows `percent` and `capped`. */
async function barShows(scope, percent, capped) {
  const bar = scope.getByTestId("usage-bar");
  let seen;
  try {
    return await eventually(`usage bar at ${percent}% capped=${capped}`, async () => {
      seen = {
        percent: await bar.getAttribute("data-percent"),
        capped: await bar.getAttribute("data-capped"),
        used: await bar.getAttribute("data-used"),
        limit: await bar.getAttribute("data-limit"),
      };
      return seen.percent === String(percent) && seen.capped === String(capped) && seen;
    });
  } catch (error) {
    error.message += `; the bar showed ${JSON.stringify(seen)}`;
    throw error;
  }
}

async function channel() {
  const { status, body } = await admin(servers.url, "GET", `/api/channels/${channelId}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

/** Opens the edit drawer of the test channel from the channel list. */
async function openDrawer() {
  if (!(await byTestId("channels-page").isVisible())) await go("channels", "channels-page");
  await channelRow().getByTestId("channel-edit").click();
  await byTestId("channel-drawer").waitFor();
}

async function closeDrawer() {
  await byTestId("channel-cancel").click();
  await byTestId("channel-drawer").waitFor({ state: "hidden" });
}

/** The text of the <label> of a form control (its accessible name's source). */
const labelOf = (control) =>
  control.evaluate((element) => (element.labels?.[0]?.innerText ?? "").trim());

/** The visible text of a nav link, e.g. "Channels". */
const navText = async (route) => (await byTestId(`nav-${route}`).innerText()).trim();

describe("admin UI in Chromium", () => {
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    servers = await startServers();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    const context = await browser.newContext({ viewport: DESKTOP, locale: "en-US" });
    context.setDefaultTimeout(UI_MS);
    page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
        pageErrors.push(message.text());
      }
    });
  });

  after(async () => {
    await browser?.close();
    await servers?.stop();
  });

  step("signs in with the admin token", async () => {
    await page.goto(servers.url + "/");
    await byTestId("signin-form").waitFor();
    assert.match(new URL(page.url()).pathname, /^\/signin$/);

    await byTestId("signin-token").fill("not-the-token");
    await byTestId("signin-submit").click();
    await byTestId("signin-error").waitFor();

    await byTestId("signin-token").fill(ADMIN_TOKEN);
    await byTestId("signin-submit").click();
    await byTestId("app-shell").waitFor();
    await byTestId("overview-page").waitFor();

    const cookies = await page.context().cookies();
    const session = cookies.filter((cookie) => cookie.httpOnly);
    assert.equal(session.length, 1, `one HttpOnly session cookie: ${JSON.stringify(cookies)}`);
    assert.equal(session[0].sameSite, "Strict");
    assert.ok(session[0].expires > Date.now() / 1000, "the session cookie has an expiry");
    await shot("desktop-overview-empty");
  });

  step("creates a channel with Daily Token Limit 1000 in the drawer", async () => {
    await go("channels", "channels-page");
    await byTestId("channel-new").click();
    await byTestId("channel-drawer").waitFor();
    await byTestId("field-name").fill(CHANNEL);
    await byTestId("field-base-url").fill(servers.fakeBase);
    await byTestId("field-key").fill("sk-upstream-ui-e2e");
    await byTestId("field-models").fill(MODEL);
    await byTestId("field-models").press("Enter");
    await page.locator(`[data-testid="model-tag"][data-model="${MODEL}"]`).waitFor();
    await byTestId("field-daily-limit").fill(String(LIMIT));
    assert.match(await byTestId("daily-limit-help").innerText(), /00:00/);
    await shot("desktop-drawer-new");
    await byTestId("channel-save").click();
    await byTestId("channel-drawer").waitFor({ state: "hidden" });

    await channelRow().waitFor();
    channelId = Number(await channelRow().getAttribute("data-channel-id"));
    const saved = await channel();
    assert.equal(saved.name, CHANNEL);
    assert.equal(saved.base_url, servers.fakeBase);
    assert.deepEqual(saved.models, [MODEL]);
    assert.equal(saved.settings.daily_token_limit, LIMIT);
    assert.equal(saved.daily_usage.limit, LIMIT);
  });

  step("creates an API key bound to the channel and shows it once", async () => {
    await go("keys", "keys-page");
    await byTestId("key-new").click();
    await byTestId("key-form").waitFor();
    await byTestId("key-name").fill(KEY_NAME);
    await byTestId("key-channel").selectOption(String(channelId));
    await byTestId("key-save").click();
    await byTestId("key-created").waitFor();
    clientKey = (await byTestId("key-created-value").inputValue()).trim();
    assert.match(clientKey, /^sk-\S{20,}$/);
    await shot("desktop-key-created");
    await byTestId("key-created-close").click();
    await byTestId("key-created").waitFor({ state: "hidden" });
    const stillShown = await page.evaluate(
      (key) =>
        document.body.innerHTML.includes(key) ||
        [...document.querySelectorAll("input, textarea")].some((input) => input.value === key),
      clientKey,
    );
    assert.equal(stillShown, false, "the full key is gone once its dialog is closed");

    const row = page.locator(`[data-testid="key-row"][data-key-name="${KEY_NAME}"]`);
    await row.waitFor();
    const keyId = await row.getAttribute("data-key-id");
    const { status, body } = await admin(servers.url, "GET", `/api/tokens/${keyId}`);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.channel_id, channelId);
    assert.ok(clientKey.startsWith(body.key_prefix), `${body.key_prefix} prefixes the shown key`);
  });

  step("relays with the bound key until the channel is capped, then 429", async () => {
    const needed = Math.ceil(LIMIT / PER_REQUEST); // 56: the last one crosses the limit
    let served = 0;
    let refused;
    while (served <= needed) {
      const reply = await send();
      if (reply.status !== 200) {
        refused = reply;
        break;
      }
      served += 1;
    }
    assert.equal(served, needed, "requests served before the cap");
    assert.ok(refused, "a request after the cap is refused");
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "channel_daily_token_limit_exceeded");

    const usage = (await channel()).daily_usage;
    assert.equal(usage.used, needed * PER_REQUEST);
    assert.equal(usage.capped, true);
  });

  step("the overview shows the channel at 100% and capped", async () => {
    await go("overview", "overview-page");
    await overviewRow().waitFor();
    const bar = await barShows(overviewRow(), 100, true);
    assert.equal(bar.used, String(Math.ceil(LIMIT / PER_REQUEST) * PER_REQUEST));
    assert.equal(bar.limit, String(LIMIT));
    const capped = page.locator(
      `[data-testid="overview-capped-item"][data-channel-name="${CHANNEL}"]`,
    );
    await capped.waitFor();
    assert.equal(await capped.getAttribute("data-reason"), "capped");
    assert.match(await overviewRow().getByTestId("usage-reset-in").innerText(), /\d/);
    await shot("desktop-overview-capped");
  });

  step("the channel list shows the bar at 100% and the capped badge", async () => {
    await go("channels", "channels-page");
    await channelRow().waitFor();
    await barShows(channelRow(), 100, true);
    await channelRow().getByTestId("channel-capped").waitFor();
    // Capped is not disabled: the admin's status stays enabled.
    assert.equal(await channelRow().getAttribute("data-status"), "enabled");
    await shot("desktop-channels-capped");

    const reply = await send();
    assert.equal(reply.status, 429, JSON.stringify(reply.body));
    assert.equal(reply.body.error.code, "channel_daily_token_limit_exceeded");
  });

  step("resetting today's usage asks first, then the bar is back at 0", async () => {
    await openDrawer();
    await byTestId("usage-today").waitFor();
    await shot("desktop-drawer-edit");

    // Cancel keeps the count.
    await byTestId("usage-reset").click();
    await byTestId("confirm-dialog").waitFor();
    await byTestId("confirm-cancel").click();
    await byTestId("confirm-dialog").waitFor({ state: "hidden" });
    assert.equal((await channel()).daily_usage.capped, true);

    await byTestId("usage-reset").click();
    await byTestId("confirm-dialog").waitFor();
    await shot("desktop-confirm-reset");
    await byTestId("confirm-ok").click();
    await byTestId("confirm-dialog").waitFor({ state: "hidden" });
    await eventually("today's usage reset", async () => (await channel()).daily_usage.used === 0);
    await closeDrawer();

    await barShows(channelRow(), 0, false);
    assert.equal(await channelRow().getByTestId("channel-capped").count(), 0);
    await go("overview", "overview-page");
    await barShows(overviewRow(), 0, false);
    assert.equal(
      await page
        .locator(`[data-testid="overview-capped-item"][data-channel-name="${CHANNEL}"]`)
        .count(),
      0,
    );

    const reply = await send();
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  });

  step("a limit of -5 shows the error next to the field and saves nothing", async () => {
    const before = await channel();
    await openDrawer();
    const limit = byTestId("field-daily-limit");
    assert.equal(await limit.inputValue(), String(LIMIT));
    await limit.fill("-5");
    await byTestId("channel-save").click();

    const error = byTestId("field-error-settings.daily_token_limit");
    await error.waitFor();
    assert.ok((await error.innerText()).trim().length > 0, "the field error says something");
    // Next to the field: in the input's own field block, tied to it for
    // assistive technology, and the input marked invalid.
    const tied = await limit.evaluate((input, id) => {
      const message = document.querySelector(`[data-testid="${id}"]`);
      return {
        sameField: input.parentElement.contains(message),
        describedBy: (input.getAttribute("aria-describedby") ?? "").split(/\s+/).includes(message.id),
        invalid: input.getAttribute("aria-invalid"),
      };
    }, "field-error-settings.daily_token_limit");
    assert.deepEqual(tied, { sameField: true, describedBy: true, invalid: "true" });
    assert.equal(await byTestId("channel-drawer").isVisible(), true, "the drawer stays open");
    await error.scrollIntoViewIfNeeded();
    await shot("desktop-drawer-field-error");

    const after = await channel();
    assert.equal(after.settings.daily_token_limit, LIMIT);
    assert.equal(after.updated_at, before.updated_at, "nothing was written");
    await closeDrawer();
  });

  step("the UI switches to zh-CN and zh-TW", async () => {
    const en = dict("en");
    const routes = ["overview", "channels", "keys", "logs", "settings"];
    for (const route of routes) assert.equal(await navText(route), en[`nav.${route}`]);
    await openDrawer();
    const limitLabel = await labelOf(byTestId("field-daily-limit"));
    const limitKeys = Object.keys(en).filter((key) => en[key] === limitLabel);
    await closeDrawer();

    for (const lang of ["zh-CN", "zh-TW"]) {
      const strings = dict(lang);
      await byTestId("lang-select").selectOption(lang);
      await eventually(`html lang=${lang}`, async () =>
        (await page.getAttribute("html", "lang")) === lang,
      );
      for (const route of routes) {
        assert.notEqual(strings[`nav.${route}`], en[`nav.${route}`], `nav.${route} is translated`);
        assert.equal(await navText(route), strings[`nav.${route}`], `nav.${route} in ${lang}`);
      }
      // The drawer's field label, and the server's own validation message.
      await openDrawer();
      assert.ok(limitKeys.length > 0, `"${limitLabel}" is a label in en.json`);
      const translated = limitKeys.map((key) => strings[key]);
      assert.ok(
        translated.includes(await labelOf(byTestId("field-daily-limit"))),
        `the Daily Token Limit label in ${lang} is one of ${translated}`,
      );
      await byTestId("field-daily-limit").fill("-5");
      await byTestId("channel-save").click();
      const error = byTestId("field-error-settings.daily_token_limit");
      await error.waitFor();
      assert.match(await error.innerText(), /[\u4e00-\u9fff]/, `the server's error in ${lang}`);
      await shot(`desktop-drawer-${lang}`);
      await closeDrawer();
      await shot(`desktop-channels-${lang}`);
    }
    await byTestId("lang-select").selectOption("en");
    assert.equal(await navText("channels"), en["nav.channels"]);
    assert.equal((await channel()).settings.daily_token_limit, LIMIT, "still nothing saved");
  });

  step("the overview's 24 h totals count every relayed request", async () => {
    await go("overview", "overview-page");
    // Request logs are written in batches, so the totals may lag a moment:
    // reload until they match, within the bound.
    const expected = [String(sent.requests), String(sent.errors), String(sent.tokens)];
    await eventually(`24 h totals ${expected}`, async () => {
      await page.reload();
      await byTestId("overview-page").waitFor();
      const seen = [];
      for (const id of ["stat-requests", "stat-errors", "stat-tokens"]) {
        const stat = byTestId(id);
        if (!(await stat.count())) return false;
        seen.push(((await stat.getAttribute("title")) ?? "").replace(/\D/g, ""));
      }
      return JSON.stringify(seen) === JSON.stringify(expected) && seen;
    }, 20_000);
  });

  step("screenshots of every page at 1280 px and phone width", async () => {
    const pages = [
      ["overview", "/", "overview-page"],
      ["channels", "/channels", "channels-page"],
      ["keys", "/keys", "keys-page"],
      ["logs", "/logs", "logs-page"],
      ["settings", "/settings", "settings-page"],
    ];
    for (const [size, viewport] of [
      ["desktop", DESKTOP],
      ["phone", PHONE],
    ]) {
      await page.setViewportSize(viewport);
      for (const [name, path, testId] of pages) {
        // A full load of each path: the server's SPA fallback serves index.html.
        await page.goto(servers.url + path);
        await byTestId(testId).waitFor();
        await eventually(`${name} loaded`, async () => (await byTestId("loading").count()) === 0);
        if (name === "logs") await page.getByTestId("log-row").first().waitFor();
        await shot(`${size}-${name}`);
        const overflow = await page.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        assert.ok(overflow <= 0, `${name} at ${viewport.width} px scrolls sideways by ${overflow} px`);
      }
      if (size === "phone") {
        // The nav folds into a menu button on a phone; it must still navigate.
        await page.getByRole("button", { name: dict("en")["nav.menu"] }).click();
        await byTestId("nav-keys").click();
        await byTestId("keys-page").waitFor();
      }
      await page.goto(servers.url + "/channels");
      await openDrawer();
      await shot(`${size}-drawer`);
      await closeDrawer();
    }
    await page.setViewportSize(DESKTOP);
  });

  step("signs out", async () => {
    await byTestId("signout").click();
    await byTestId("signin-form").waitFor();
    await page.goto(servers.url + "/channels");
    await byTestId("signin-form").waitFor();
    assert.equal(await byTestId("app-shell").count(), 0);
  });

  step("no script errors and no CSP violations in the page", async () => {
    assert.deepEqual(pageErrors, []);
  });
});
