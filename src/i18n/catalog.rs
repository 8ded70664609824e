//! Every client-visible message, in English, Simplified and Traditional
//! Chinese. Each variant's arm matches on the locale exhaustively, so a
//! message cannot exist without all three translations.
//!
//! Arguments that are data (a model name, a field path, a serde detail)
//! are inserted verbatim and never translated.

use super::Locale;

/// A message with its arguments, rendered in the request's locale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    // Client keys on /v1.
    MissingApiKey,
    IncorrectApiKey,
    ApiKeyDisabled,
    ApiKeyExpired,
    // Relay requests.
    MalformedJson {
        detail: String,
    },
    ModelRequired,
    ModelNotFound {
        model: String,
    },
    BodyTooLarge {
        limit: usize,
    },
    UpstreamAttemptsFailed {
        attempts: usize,
        last: String,
    },
    NoChannelTried,
    ChannelDailyLimitExceeded {
        channel: String,
        seconds: u64,
    },
    DailyLimitExhausted {
        model: String,
        seconds: u64,
    },
    MalformedMultipart {
        detail: String,
    },
    FileRequired,
    MessagesRequired,
    AnthropicUnsupported {
        field: String,
    },
    // Admin authentication and routing.
    AdminTokenMissing,
    AdminTokenWrong,
    SessionMissing,
    CsrfFailed,
    TooManyAttempts {
        seconds: u64,
    },
    NoSuchRoute,
    /// Cluster mode: the write could not be committed (no leader or quorum).
    ClusterUnavailable {
        detail: String,
    },
    /// A cluster endpoint on a node started without cluster flags.
    ClusterDisabled,
    ChannelNotFound,
    TokenNotFound,
    NotFound,
    Internal,
    // Admin input.
    IdNotInteger,
    InvalidValue {
        detail: String,
    },
    ChannelInUse {
        keys: String,
    },
    ChannelMissing {
        id: i64,
    },
    TokenModelsEmpty,
    KeyRequired,
    KeyMalformed {
        line: usize,
    },
    TimeInvalid {
        field: String,
    },
    PageInvalid,
    PerPageInvalid {
        max: u32,
    },
    FieldEmpty {
        field: String,
    },
    FieldTooLong {
        field: String,
        max: usize,
    },
    ListEmpty {
        field: String,
    },
    UrlInvalid {
        detail: String,
    },
    UrlScheme,
    UrlHost,
    UrlQuery,
    UrlCredentials,
    PriorityRange {
        min: i64,
        max: i64,
    },
    WeightRange {
        max: i64,
    },
    UntilBeforeSince,
    TokenCountInvalid {
        field: String,
        max: u64,
    },
    ZoneInvalid {
        field: String,
    },
    DateInvalid {
        field: String,
    },
    // Channel health.
    SettingNotBoolean {
        field: String,
    },
    TestEndpointInvalid {
        allowed: String,
    },
    UpstreamModelsFailed {
        detail: String,
    },
    // Runtime settings and stats.
    NumberRange {
        field: String,
        min: u64,
        max: u64,
    },
    DurationRange {
        field: String,
        min: String,
        max: String,
    },
}

impl Message {
    /// The message in `locale`.
    pub fn render(&self, locale: Locale) -> String {
        use Locale::{En, ZhCn, ZhTw};
        use Message as M;
        match self {
            M::MissingApiKey => match locale {
                En => "You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'."
                    .into(),
                ZhCn => "未提供 API 密钥。请通过 'Authorization: Bearer sk-...' 发送。".into(),
                ZhTw => "未提供 API 金鑰。請透過 'Authorization: Bearer sk-...' 傳送。".into(),
            },
            M::IncorrectApiKey => match locale {
                En => "Incorrect API key provided.".into(),
                ZhCn => "提供的 API 密钥不正确。".into(),
                ZhTw => "提供的 API 金鑰不正確。".into(),
            },
            M::ApiKeyDisabled => match locale {
                En => "This API key is disabled.".into(),
                ZhCn => "此 API 密钥已被禁用。".into(),
                ZhTw => "此 API 金鑰已停用。".into(),
            },
            M::ApiKeyExpired => match locale {
                En => "This API key has expired.".into(),
                ZhCn => "此 API 密钥已过期。".into(),
                ZhTw => "此 API 金鑰已過期。".into(),
            },
            M::MalformedJson { detail } => match locale {
                En => format!("We could not parse the JSON body of your request: {detail}"),
                ZhCn => format!("无法解析请求的 JSON 正文：{detail}"),
                ZhTw => format!("無法解析請求的 JSON 內容：{detail}"),
            },
            M::MalformedMultipart { detail } => match locale {
                En => format!("We could not parse the multipart body of your request: {detail}"),
                ZhCn => format!("无法解析请求的 multipart 正文：{detail}"),
                ZhTw => format!("無法解析請求的 multipart 內容：{detail}"),
            },
            M::FileRequired => match locale {
                En => "You must provide a file parameter.".into(),
                ZhCn => "必须提供 file 参数。".into(),
                ZhTw => "必須提供 file 參數。".into(),
            },
            M::ModelRequired => match locale {
                En => "You must provide a model parameter.".into(),
                ZhCn => "必须提供 model 参数。".into(),
                ZhTw => "必須提供 model 參數。".into(),
            },
            M::ModelNotFound { model } => match locale {
                En => {
                    format!("The model `{model}` does not exist or you do not have access to it.")
                }
                ZhCn => format!("模型 `{model}` 不存在，或您无权使用。"),
                ZhTw => format!("模型 `{model}` 不存在，或您無權使用。"),
            },
            M::BodyTooLarge { limit } => match locale {
                En => format!("The request body exceeds the limit of {limit} bytes."),
                ZhCn => format!("请求正文超过了 {limit} 字节的上限。"),
                ZhTw => format!("請求內容超過了 {limit} 位元組的上限。"),
            },
            M::UpstreamAttemptsFailed { attempts, last } => match locale {
                En => format!(
                    "{attempts} upstream attempt{} failed; last error: {last}",
                    if *attempts == 1 { "" } else { "s" }
                ),
                ZhCn => format!("{attempts} 次上游尝试均失败；最后一个错误：{last}"),
                ZhTw => format!("{attempts} 次上游嘗試均失敗；最後一個錯誤：{last}"),
            },
            M::NoChannelTried => match locale {
                En => "no channel could be tried".into(),
                ZhCn => "没有可尝试的渠道".into(),
                ZhTw => "沒有可嘗試的管道".into(),
            },
            M::ChannelDailyLimitExceeded { channel, seconds } => match locale {
                En => format!(
                    "The channel `{channel}` bound to this API key has reached its daily token limit. It resets in {}.",
                    duration(*seconds, locale)
                ),
                ZhCn => format!(
                    "此 API 密钥绑定的渠道 `{channel}` 已达到每日 token 上限，将在 {} 后重置。",
                    duration(*seconds, locale)
                ),
                ZhTw => format!(
                    "此 API 金鑰綁定的管道 `{channel}` 已達到每日 token 上限，將在 {} 後重置。",
                    duration(*seconds, locale)
                ),
            },
            M::DailyLimitExhausted { model, seconds } => match locale {
                En => format!(
                    "Every channel serving `{model}` has reached its daily token limit. The earliest resets in {}.",
                    duration(*seconds, locale)
                ),
                ZhCn => format!(
                    "所有提供 `{model}` 的渠道都已达到每日 token 上限，最早将在 {} 后重置。",
                    duration(*seconds, locale)
                ),
                ZhTw => format!(
                    "所有提供 `{model}` 的管道都已達到每日 token 上限，最早將在 {} 後重置。",
                    duration(*seconds, locale)
                ),
            },
            M::MessagesRequired => match locale {
                En => "messages must be a non-empty array.".into(),
                ZhCn => "messages 必须是非空数组。".into(),
                ZhTw => "messages 必須是非空陣列。".into(),
            },
            M::AnthropicUnsupported { field } => match locale {
                En => format!("`{field}` cannot be sent to an Anthropic channel."),
                ZhCn => format!("`{field}` 无法发送到 Anthropic 渠道。"),
                ZhTw => format!("`{field}` 無法傳送到 Anthropic 管道。"),
            },
            M::AdminTokenMissing => match locale {
                En => {
                    "The admin token is missing. Send it as 'Authorization: Bearer <token>'.".into()
                }
                ZhCn => "缺少管理员令牌。请通过 'Authorization: Bearer <token>' 发送。".into(),
                ZhTw => "缺少管理員權杖。請透過 'Authorization: Bearer <token>' 傳送。".into(),
            },
            M::AdminTokenWrong => match locale {
                En => "The admin token is wrong.".into(),
                ZhCn => "管理员令牌不正确。".into(),
                ZhTw => "管理員權杖不正確。".into(),
            },
            M::SessionMissing => match locale {
                En => "You are not signed in, or your session has expired. Sign in with the admin token.".into(),
                ZhCn => "您尚未登录，或会话已过期。请使用管理员令牌登录。".into(),
                ZhTw => "您尚未登入，或工作階段已過期。請使用管理員權杖登入。".into(),
            },
            M::CsrfFailed => match locale {
                En => "This request needs the session's CSRF token in the x-csrf-token header.".into(),
                ZhCn => "此请求需要在 x-csrf-token 请求头中携带会话的 CSRF 令牌。".into(),
                ZhTw => "此請求需要在 x-csrf-token 標頭中攜帶工作階段的 CSRF 權杖。".into(),
            },
            M::TooManyAttempts { seconds } => match locale {
                En => format!(
                    "Too many wrong admin tokens from your address. Try again in {}.",
                    duration(*seconds, locale)
                ),
                ZhCn => format!(
                    "来自您地址的错误管理员令牌过多。请在 {} 后重试。",
                    duration(*seconds, locale)
                ),
                ZhTw => format!(
                    "來自您位址的錯誤管理員權杖過多。請在 {} 後重試。",
                    duration(*seconds, locale)
                ),
            },
            M::NumberRange { field, min, max } => match locale {
                En => format!("`{field}` must be a whole number from {min} to {max}."),
                ZhCn => format!("`{field}` 必须是 {min} 到 {max} 之间的整数。"),
                ZhTw => format!("`{field}` 必須是 {min} 到 {max} 之間的整數。"),
            },
            M::DurationRange { field, min, max } => match locale {
                En => format!(
                    "`{field}` must be a duration such as 10s, 500ms or 2m, from {min} to {max}."
                ),
                ZhCn => format!("`{field}` 必须是 10s、500ms 或 2m 这样的时长，范围为 {min} 到 {max}。"),
                ZhTw => format!("`{field}` 必須是 10s、500ms 或 2m 這樣的時長，範圍為 {min} 到 {max}。"),
            },
            M::ClusterUnavailable { detail } => match locale {
                En => format!(
                    "The cluster has no leader or no quorum, so this change cannot be committed; try again shortly ({detail})."
                ),
                ZhCn => format!("集群当前没有领导者或未达到多数派，无法提交此更改；请稍后重试（{detail}）。"),
                ZhTw => format!("叢集目前沒有領導者或未達到多數派，無法提交此變更；請稍後重試（{detail}）。"),
            },
            M::ClusterDisabled => match locale {
                En => "This node runs without cluster flags; cluster endpoints are not available.".into(),
                ZhCn => "此节点未以集群模式运行；集群接口不可用。".into(),
                ZhTw => "此節點未以叢集模式執行；叢集介面不可用。".into(),
            },
            M::NoSuchRoute => match locale {
                En => "No such admin API route.".into(),
                ZhCn => "没有这个管理 API 路由。".into(),
                ZhTw => "沒有這個管理 API 路由。".into(),
            },
            M::ChannelNotFound => match locale {
                En => "Channel not found.".into(),
                ZhCn => "渠道不存在。".into(),
                ZhTw => "管道不存在。".into(),
            },
            M::TokenNotFound => match locale {
                En => "API key not found.".into(),
                ZhCn => "API 密钥不存在。".into(),
                ZhTw => "API 金鑰不存在。".into(),
            },
            M::NotFound => match locale {
                En => "Not found.".into(),
                ZhCn => "未找到。".into(),
                ZhTw => "找不到。".into(),
            },
            M::Internal => match locale {
                En => "Internal error.".into(),
                ZhCn => "内部错误。".into(),
                ZhTw => "內部錯誤。".into(),
            },
            M::IdNotInteger => match locale {
                En => "id must be an integer.".into(),
                ZhCn => "id 必须是整数。".into(),
                ZhTw => "id 必須是整數。".into(),
            },
            M::InvalidValue { detail } => match locale {
                En => format!("Invalid request: {detail}"),
                ZhCn => format!("请求无效：{detail}"),
                ZhTw => format!("請求無效：{detail}"),
            },
            M::ChannelInUse { keys } => match locale {
                En => format!("API keys {keys} are bound to this channel; unbind them first."),
                ZhCn => format!("API 密钥 {keys} 绑定了此渠道，请先解除绑定。"),
                ZhTw => format!("API 金鑰 {keys} 綁定了此管道，請先解除綁定。"),
            },
            M::ChannelMissing { id } => match locale {
                En => format!("Channel {id} does not exist."),
                ZhCn => format!("渠道 {id} 不存在。"),
                ZhTw => format!("管道 {id} 不存在。"),
            },
            M::TokenModelsEmpty => match locale {
                En => "models must not be empty; use null to allow every model.".into(),
                ZhCn => "models 不能为空；使用 null 表示允许所有模型。".into(),
                ZhTw => "models 不能為空；使用 null 表示允許所有模型。".into(),
            },
            M::KeyRequired => match locale {
                En => "At least one key is required.".into(),
                ZhCn => "至少需要一个密钥。".into(),
                ZhTw => "至少需要一個金鑰。".into(),
            },
            M::KeyMalformed { line } => match locale {
                En => format!("Key {line} is empty or contains whitespace."),
                ZhCn => format!("第 {line} 个密钥为空或包含空白字符。"),
                ZhTw => format!("第 {line} 個金鑰為空或包含空白字元。"),
            },
            M::TimeInvalid { field } => match locale {
                En => format!("{field} must be an RFC 3339 time such as 2025-01-31T00:00:00Z."),
                ZhCn => format!("{field} 必须是 RFC 3339 时间，例如 2025-01-31T00:00:00Z。"),
                ZhTw => format!("{field} 必須是 RFC 3339 時間，例如 2025-01-31T00:00:00Z。"),
            },
            M::PageInvalid => match locale {
                En => "page counts from 1.".into(),
                ZhCn => "page 从 1 开始计数。".into(),
                ZhTw => "page 從 1 開始計數。".into(),
            },
            M::PerPageInvalid { max } => match locale {
                En => format!("per_page must be between 1 and {max}."),
                ZhCn => format!("per_page 必须在 1 到 {max} 之间。"),
                ZhTw => format!("per_page 必須介於 1 到 {max} 之間。"),
            },
            M::FieldEmpty { field } => match locale {
                En => format!("{field} must not be empty."),
                ZhCn => format!("{field} 不能为空。"),
                ZhTw => format!("{field} 不能為空。"),
            },
            M::FieldTooLong { field, max } => match locale {
                En => format!("{field} must be at most {max} characters."),
                ZhCn => format!("{field} 最多 {max} 个字符。"),
                ZhTw => format!("{field} 最多 {max} 個字元。"),
            },
            M::ListEmpty { field } => match locale {
                En => format!("{field} must list at least one entry."),
                ZhCn => format!("{field} 至少需要一项。"),
                ZhTw => format!("{field} 至少需要一項。"),
            },
            M::UrlInvalid { detail } => match locale {
                En => format!("base_url is not a valid URL: {detail}"),
                ZhCn => format!("base_url 不是有效的 URL：{detail}"),
                ZhTw => format!("base_url 不是有效的 URL：{detail}"),
            },
            M::UrlScheme => match locale {
                En => "base_url must use http or https.".into(),
                ZhCn => "base_url 必须使用 http 或 https。".into(),
                ZhTw => "base_url 必須使用 http 或 https。".into(),
            },
            M::UrlHost => match locale {
                En => "base_url must name a host.".into(),
                ZhCn => "base_url 必须包含主机名。".into(),
                ZhTw => "base_url 必須包含主機名稱。".into(),
            },
            M::UrlQuery => match locale {
                En => "base_url must not have a query or fragment.".into(),
                ZhCn => "base_url 不能包含查询参数或片段。".into(),
                ZhTw => "base_url 不能包含查詢參數或片段。".into(),
            },
            M::UrlCredentials => match locale {
                En => "base_url must not carry credentials; put keys in key.".into(),
                ZhCn => "base_url 不能包含凭据；请把密钥填在 key 中。".into(),
                ZhTw => "base_url 不能包含憑證；請把金鑰填在 key 中。".into(),
            },
            M::PriorityRange { min, max } => match locale {
                En => format!("priority must be between {min} and {max}."),
                ZhCn => format!("priority 必须在 {min} 到 {max} 之间。"),
                ZhTw => format!("priority 必須介於 {min} 到 {max} 之間。"),
            },
            M::WeightRange { max } => match locale {
                En => format!("weight must be between 0 and {max}."),
                ZhCn => format!("weight 必须在 0 到 {max} 之间。"),
                ZhTw => format!("weight 必須介於 0 到 {max} 之間。"),
            },
            M::UntilBeforeSince => match locale {
                En => "until must not be before since.".into(),
                ZhCn => "until 不能早于 since。".into(),
                ZhTw => "until 不能早於 since。".into(),
            },
            M::TokenCountInvalid { field, max } => match locale {
                En => format!(
                    "{field} must be a whole number of tokens from 0 to {max} (0 means unlimited)."
                ),
                ZhCn => format!("{field} 必须是 0 到 {max} 之间的整数 token 数（0 表示不限）。"),
                ZhTw => format!("{field} 必須是 0 到 {max} 之間的整數 token 數（0 表示不限）。"),
            },
            M::ZoneInvalid { field } => match locale {
                En => {
                    format!("{field} must be an IANA time zone name such as Asia/Shanghai or UTC.")
                }
                ZhCn => format!("{field} 必须是 IANA 时区名称，例如 Asia/Shanghai 或 UTC。"),
                ZhTw => format!("{field} 必須是 IANA 時區名稱，例如 Asia/Shanghai 或 UTC。"),
            },
            M::DateInvalid { field } => match locale {
                En => format!("{field} must be a date such as 2025-01-31."),
                ZhCn => format!("{field} 必须是日期，例如 2025-01-31。"),
                ZhTw => format!("{field} 必須是日期，例如 2025-01-31。"),
            },
            M::SettingNotBoolean { field } => match locale {
                En => format!("{field} must be true or false."),
                ZhCn => format!("{field} 必须是 true 或 false。"),
                ZhTw => format!("{field} 必須是 true 或 false。"),
            },
            M::TestEndpointInvalid { allowed } => match locale {
                En => format!("This channel can be tested on these endpoints only: {allowed}."),
                ZhCn => format!("此渠道只能在以下端点上测试：{allowed}。"),
                ZhTw => format!("此管道只能在以下端點上測試：{allowed}。"),
            },
            M::UpstreamModelsFailed { detail } => match locale {
                En => format!("Fetching the upstream's model list failed: {detail}"),
                ZhCn => format!("获取上游模型列表失败：{detail}"),
                ZhTw => format!("取得上游模型清單失敗：{detail}"),
            },
        }
    }

    /// One instance of every message, for completeness tests.
    pub fn samples() -> Vec<Message> {
        let text = || "x".to_string();
        vec![
            Message::MissingApiKey,
            Message::IncorrectApiKey,
            Message::ApiKeyDisabled,
            Message::ApiKeyExpired,
            Message::MalformedJson { detail: text() },
            Message::ModelRequired,
            Message::MalformedMultipart { detail: text() },
            Message::FileRequired,
            Message::ModelNotFound { model: text() },
            Message::BodyTooLarge { limit: 1 },
            Message::UpstreamAttemptsFailed {
                attempts: 2,
                last: text(),
            },
            Message::NoChannelTried,
            Message::ChannelDailyLimitExceeded {
                channel: text(),
                seconds: 3_700,
            },
            Message::DailyLimitExhausted {
                model: text(),
                seconds: 59,
            },
            Message::MessagesRequired,
            Message::AnthropicUnsupported { field: text() },
            Message::AdminTokenMissing,
            Message::AdminTokenWrong,
            Message::NoSuchRoute,
            Message::ClusterUnavailable { detail: text() },
            Message::ClusterDisabled,
            Message::ChannelNotFound,
            Message::TokenNotFound,
            Message::NotFound,
            Message::Internal,
            Message::IdNotInteger,
            Message::InvalidValue { detail: text() },
            Message::ChannelInUse { keys: text() },
            Message::ChannelMissing { id: 1 },
            Message::TokenModelsEmpty,
            Message::KeyRequired,
            Message::KeyMalformed { line: 1 },
            Message::TimeInvalid { field: text() },
            Message::PageInvalid,
            Message::PerPageInvalid { max: 1 },
            Message::FieldEmpty { field: text() },
            Message::FieldTooLong {
                field: text(),
                max: 1,
            },
            Message::ListEmpty { field: text() },
            Message::UrlInvalid { detail: text() },
            Message::UrlScheme,
            Message::UrlHost,
            Message::UrlQuery,
            Message::UrlCredentials,
            Message::PriorityRange { min: 0, max: 1 },
            Message::WeightRange { max: 1 },
            Message::UntilBeforeSince,
            Message::TokenCountInvalid {
                field: text(),
                max: 1,
            },
            Message::ZoneInvalid { field: text() },
            Message::DateInvalid { field: text() },
            Message::SettingNotBoolean { field: text() },
            Message::TestEndpointInvalid { allowed: text() },
            Message::UpstreamModelsFailed { detail: text() },
            Message::SessionMissing,
            Message::CsrfFailed,
            Message::TooManyAttempts { seconds: 90 },
            Message::NumberRange {
                field: text(),
                min: 0,
                max: 1,
            },
            Message::DurationRange {
                field: text(),
                min: text(),
                max: text(),
            },
        ]
    }
}

/// A wait such as "5 h 12 m", "3 m 20 s" or "45 s", in `locale`.
pub fn duration(seconds: u64, locale: Locale) -> String {
    let (hours, minutes, rest) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let (h, m, s) = match locale {
        Locale::En => ("h", "m", "s"),
        Locale::ZhCn => ("小时", "分钟", "秒"),
        Locale::ZhTw => ("小時", "分鐘", "秒"),
    };
    let separator = if locale == Locale::En { " " } else { "" };
    if hours > 0 {
        format!("{hours}{separator}{h} {minutes}{separator}{m}")
    } else if minutes > 0 {
        format!("{minutes}{separator}{m} {rest}{separator}{s}")
    } else {
        format!("{rest}{separator}{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message renders in every locale, and the Chinese texts are
    /// translations, not English fallbacks.
    #[test]
    fn every_message_exists_in_every_locale() {
        for message in Message::samples() {
            let english = message.render(Locale::En);
            assert!(!english.is_empty(), "{message:?}");
            for locale in [Locale::ZhCn, Locale::ZhTw] {
                let text = message.render(locale);
                assert!(!text.is_empty(), "{message:?} {locale:?}");
                assert_ne!(text, english, "{message:?} is untranslated in {locale:?}");
            }
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5 * 3600 + 12 * 60 + 9, Locale::En), "5 h 12 m");
        assert_eq!(duration(200, Locale::En), "3 m 20 s");
        assert_eq!(duration(45, Locale::En), "45 s");
        assert_eq!(duration(3_700, Locale::ZhCn), "1小时 1分钟");
        assert_eq!(duration(3_700, Locale::ZhTw), "1小時 1分鐘");
    }
}
