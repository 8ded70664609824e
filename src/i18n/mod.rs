//! Locale negotiation and the message catalog for client-visible errors.
//!
//! Only messages are localized; error `code` and `type` never are. The locale
//! of a request comes from `Accept-Language` (en, zh-CN, zh-TW; en by
//! default). A middleware puts it in a task-local, so any error rendered while
//! handling the request speaks the client's language without threading the
//! locale through every function.

mod catalog;

pub use catalog::Message;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    ZhCn,
    ZhTw,
}

impl Locale {
    pub const ALL: [Locale; 3] = [Locale::En, Locale::ZhCn, Locale::ZhTw];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
            Locale::ZhTw => "zh-TW",
        }
    }

    /// Maps one language tag to a supported locale, if any.
    fn from_tag(tag: &str) -> Option<Locale> {
        let tag = tag.trim().to_ascii_lowercase();
        let mut parts = tag.split(['-', '_']);
        match parts.next()? {
            "en" => Some(Locale::En),
            "zh" => {
                let rest: Vec<&str> = parts.collect();
                let traditional = rest
                    .iter()
                    .any(|part| matches!(*part, "tw" | "hk" | "mo" | "hant"));
                Some(if traditional {
                    Locale::ZhTw
                } else {
                    Locale::ZhCn
                })
            }
            "*" => Some(Locale::En),
            _ => None,
        }
    }
}

/// Picks the best supported locale from an `Accept-Language` value, honouring
/// q-values; anything unparseable or unsupported falls back to English.
pub fn negotiate(accept_language: Option<&str>) -> Locale {
    let Some(header) = accept_language else {
        return Locale::En;
    };
    let mut best: Option<(f32, usize, Locale)> = None;
    for (position, item) in header.split(',').enumerate() {
        let mut pieces = item.split(';');
        let Some(locale) = pieces.next().and_then(Locale::from_tag) else {
            continue;
        };
        let quality = pieces
            .find_map(|piece| piece.trim().strip_prefix("q="))
            .and_then(|value| value.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if quality <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((best_quality, best_position, _)) => {
                quality > best_quality || (quality == best_quality && position < best_position)
            }
        };
        if better {
            best = Some((quality, position, locale));
        }
    }
    best.map(|(_, _, locale)| locale).unwrap_or(Locale::En)
}

tokio::task_local! {
    static LOCALE: Locale;
}

/// The locale of the request being handled, or English outside one.
pub fn current() -> Locale {
    LOCALE.try_with(|locale| *locale).unwrap_or(Locale::En)
}

/// Runs `future` with `locale` as the current locale.
pub async fn scope<F: std::future::Future>(locale: Locale, future: F) -> F::Output {
    LOCALE.scope(locale, future).await
}

/// Middleware: negotiates the request's locale and handles it in that scope.
pub async fn layer(request: Request, next: Next) -> Response {
    let locale = negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok()),
    );
    scope(locale, next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_honours_tags_and_quality() {
        let cases = [
            (None, Locale::En),
            (Some(""), Locale::En),
            (Some("zh-CN"), Locale::ZhCn),
            (Some("zh"), Locale::ZhCn),
            (Some("zh-Hans-CN"), Locale::ZhCn),
            (Some("zh-TW"), Locale::ZhTw),
            (Some("zh-HK,zh;q=0.8"), Locale::ZhTw),
            (Some("zh-Hant"), Locale::ZhTw),
            (Some("fr-FR,zh-TW;q=0.5,en;q=0.9"), Locale::En),
            (Some("fr-FR,zh-TW;q=0.5"), Locale::ZhTw),
            (Some("de, *;q=0.1"), Locale::En),
            (Some("zh-CN;q=0, zh-TW"), Locale::ZhTw),
            (Some("garbage;;;q=x"), Locale::En),
        ];
        for (header, expected) in cases {
            assert_eq!(negotiate(header), expected, "{header:?}");
        }
    }
}
