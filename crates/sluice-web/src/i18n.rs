//! English and Simplified Chinese. The language is the `sluice_lang` cookie (the switch in the
//! header sets it), else the first of `Accept-Language` that is one of the two, else English.
//! Every text a page shows is a key in both tables (a test checks they have the same keys, and
//! that every key the templates use exists).

use http::HeaderMap;

mod credentials;

/// A table of texts: (key, text).
type Table = &'static [(&'static str, &'static str)];

/// A language's tables: the shared one, then the pages' own.
fn tables(lang: Lang) -> [Table; 2] {
    match lang {
        Lang::En => [EN, credentials::EN],
        Lang::Zh => [ZH, credentials::ZH],
    }
}

/// A language of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

/// The preference cookie.
pub const LANG_COOKIE: &str = "sluice_lang";

impl Lang {
    /// `en` / `zh-CN` (the `lang` attribute and the cookie's value).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The cookie, else `Accept-Language` (by q-value), else English.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(lang) =
            crate::session::cookie(headers, LANG_COOKIE).and_then(|c| Lang::parse(&c))
        {
            return lang;
        }
        let Some(accept) = headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::En;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::parse(tag)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::En)
    }

    /// The text of `key` in this language (the key itself if it is missing: a test catches it).
    pub fn t(self, key: &str) -> &'static str {
        tables(self)
            .iter()
            .flat_map(|t| t.iter())
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or("??")
    }
}

pub(crate) const EN: &[(&str, &str)] = &[
    ("app.name", "Sluice"),
    ("nav.overview", "Overview"),
    ("nav.credentials", "Credentials"),
    ("nav.keys", "Keys"),
    ("nav.requests", "Requests"),
    ("nav.usage", "Usage"),
    ("nav.users", "Users"),
    ("nav.me", "Me"),
    ("nav.system", "System"),
    ("nav.signout", "Sign out"),
    ("nav.skip", "Skip to content"),
    ("prefs.language", "Language"),
    ("prefs.theme", "Theme"),
    ("prefs.theme.auto", "Auto"),
    ("prefs.theme.light", "Light"),
    ("prefs.theme.dark", "Dark"),
    ("prefs.apply", "Apply"),
    ("login.title", "Sign in"),
    ("login.username", "User name"),
    ("login.password", "Password"),
    ("login.submit", "Sign in"),
    ("login.failed", "Wrong user name or password."),
    (
        "login.limited",
        "Too many attempts. Wait a little and try again.",
    ),
    ("login.ended", "Your session has ended. Sign in again."),
    ("firstrun.title", "First run: no admin exists yet"),
    (
        "firstrun.lead",
        "Nobody can sign in until an admin account exists. Create one in either of two ways, then reload this page.",
    ),
    (
        "firstrun.cli",
        "With the command line (the password is read from standard input):",
    ),
    (
        "firstrun.config",
        "Or in the config file, then restart Sluice (the admin is created at start-up if missing):",
    ),
    ("system.title", "System"),
    ("system.version", "Version"),
    ("system.uptime", "Uptime"),
    ("system.started", "Started"),
    ("system.datadir", "Data directory"),
    ("system.store", "Store"),
    ("system.dbsize", "Database size"),
    ("system.backlog", "Usage records waiting to be written"),
    ("system.remote", "Remote management"),
    (
        "system.remote.on",
        "allowed from other machines (with the management key)",
    ),
    ("system.remote.off", "only from this machine"),
    ("system.mgmtkey", "Management key"),
    ("system.mgmtkey.set", "set"),
    (
        "system.mgmtkey.unset",
        "not set: the management API answers 403",
    ),
    ("system.providers", "Providers / credentials"),
    ("system.links", "Other surfaces"),
    ("system.notapplicable", "not applicable"),
    ("notfound.title", "Not found"),
    ("notfound.lead", "There is no dashboard page here."),
    ("forbidden.title", "Not allowed"),
    (
        "forbidden.lead",
        "This page is for admins. Your own keys, usage and limits are on Me.",
    ),
    ("me.keys", "My keys"),
    ("me.nokeys", "You have no keys yet."),
    ("me.role", "Role"),
    ("requests.user", "User"),
    ("requests.credential", "Credential"),
    ("requests.ttftabove", "TTFT above (ms)"),
    ("requests.tail", "Live"),
    ("requests.tail.live", "new requests appear on top"),
    ("requests.tail.paused", "paused while you read"),
    ("requests.tail.show", "Show new:"),
    ("users.title", "Users"),
    ("users.username", "User name"),
    ("users.password", "Password"),
    ("users.role", "Role"),
    ("users.created", "Created"),
    ("users.requests.month", "Requests this month"),
    ("users.cost.month", "Cost this month"),
    ("users.setrole", "Set role"),
    ("users.resetpw", "Reset password"),
    ("users.newpw", "New password"),
    (
        "users.resetpw.confirm",
        "Set it (signs them out everywhere)",
    ),
    ("users.create", "New user"),
    ("users.create.submit", "Create user"),
    ("users.usage", "Usage in the last 30 days, by model"),
    ("me.limits", "My limits"),
    ("me.keycap", "Keys (yours / most allowed)"),
    ("me.budget", "This month / monthly budget"),
    ("me.ceilings", "Most a key of yours may have"),
    ("me.usage", "My usage in the last 30 days, by model"),
    ("me.snippets", "Client set-up"),
    (
        "me.snippets.lead",
        "Put one of your keys where these say YOUR_SLUICE_KEY (a key is shown only once, when it is created or rotated).",
    ),
    ("me.snippets.key", "YOUR_SLUICE_KEY"),
    ("usage.title", "Usage"),
    ("usage.grain", "Per"),
    ("usage.grain.hour", "Hour"),
    ("usage.grain.day", "Day"),
    ("usage.by", "Group by"),
    ("usage.by.key", "Key"),
    ("usage.by.user", "User"),
    ("usage.by.model", "Model"),
    ("usage.by.provider", "Provider"),
    ("usage.by.credential", "Credential"),
    ("usage.total", "Total"),
    ("usage.utc", "hours and days in UTC"),
    ("usage.periods", "By period"),
    ("usage.failed", "Failed"),
    ("usage.quota", "This month / quota"),
    ("usage.trend", "Requests per period"),
    ("keys.name", "Name"),
    ("keys.prefix", "Key"),
    ("keys.status", "Status"),
    ("keys.rate", "Per minute"),
    ("keys.daily", "Per day"),
    ("keys.monthly", "Monthly quota"),
    ("keys.requests", "Requests"),
    ("keys.cost", "Cost"),
    ("keys.lastused", "Last used"),
    ("keys.never", "never"),
    ("status.active", "active"),
    ("status.disabled", "disabled"),
    ("limit.unlimited", "unlimited"),
    ("requests.title", "Requests"),
    ("requests.detail", "Request"),
    ("requests.range", "Time"),
    ("requests.key", "Key"),
    ("requests.model", "Model"),
    ("requests.provider", "Provider"),
    ("requests.status", "Status"),
    ("requests.stream", "Stream"),
    ("requests.yes", "yes"),
    ("requests.no", "no"),
    ("requests.failover", "had failover"),
    ("requests.csv", "Export CSV"),
    ("requests.time", "Time"),
    ("requests.route", "Credential"),
    ("requests.dialects", "Client → upstream"),
    ("requests.in", "In"),
    ("requests.out", "Out"),
    ("requests.cache", "Cache r / w"),
    ("requests.reasoning", "Reasoning"),
    ("requests.latency", "Latency"),
    ("requests.attempts", "Attempts"),
    ("requests.tries", "tries"),
    (
        "requests.estimated",
        "tokens counted by Sluice (the upstream reported none)",
    ),
    ("requests.none", "No requests match."),
    ("requests.newest", "Newest"),
    ("requests.older", "Older"),
    ("requests.tokens", "Tokens"),
    ("requests.timeline", "Failover timeline"),
    (
        "requests.noattempts",
        "No upstream attempt (refused before routing).",
    ),
    ("requests.cooldown", "opened a cooldown until"),
    ("keys.title", "Keys"),
    ("keys.actions", "Actions"),
    ("keys.cancel", "Cancel"),
    ("keys.copied", "Copied"),
    ("keys.copy", "Copy"),
    ("keys.create", "New key"),
    ("keys.create.submit", "Create key"),
    ("keys.created.title", "Your new key"),
    (
        "keys.created.once",
        "This is the only time the key is shown. Sluice keeps only its hash: copy it now.",
    ),
    (
        "keys.created.confirm",
        "I have saved this key somewhere safe",
    ),
    ("keys.created.done", "Done"),
    ("keys.default", "default"),
    ("keys.delete", "Delete"),
    ("keys.delete.confirm", "Delete this key now"),
    ("keys.rotate", "Rotate"),
    (
        "keys.rotate.confirm",
        "New secret now (the old one stops working at once)",
    ),
    ("keys.disable", "Disable"),
    ("keys.enable", "Enable"),
    ("keys.edit", "Edit"),
    ("keys.edit.title", "Edit key"),
    ("keys.expires", "Expires"),
    ("keys.filter.all", "all"),
    ("keys.filter.apply", "Filter"),
    ("keys.filter.near", "near a limit (80 %)"),
    ("keys.filter.owner", "Owner"),
    ("keys.models", "Models"),
    ("keys.models.hint", "all (or a comma-separated list)"),
    ("keys.none", "No keys match."),
    ("keys.owner", "Owner"),
    ("keys.platforms", "Platforms"),
    ("keys.resets", "resets"),
    ("keys.save", "Save"),
    ("keys.tokens", "Tokens"),
    ("keys.snippet.openai", "OpenAI SDK (Python)"),
    ("keys.snippet.anthropic", "Anthropic SDK / Claude Code"),
    ("keys.snippet.gemini", "Gemini SDK (google-genai)"),
    ("keys.snippet.curl", "curl"),
    ("overview.title", "Overview"),
    ("overview.asof", "as of"),
    ("overview.attention", "Needs attention"),
    ("overview.col.cost", "Cost"),
    ("overview.col.errors", "Errors"),
    ("overview.col.name", "Name"),
    ("overview.col.requests", "Requests"),
    ("overview.col.trend", "Requests per hour, 24 h"),
    ("overview.col.ttft", "p95 TTFT"),
    ("overview.credentials", "Credentials"),
    ("overview.credentials.legend", "active / cooling / disabled"),
    ("overview.keysnear", "Keys near a limit"),
    (
        "overview.keysnear.sub",
        "80 % of a rate, daily or monthly limit",
    ),
    (
        "overview.latency",
        "Latency and time to first token (p50 / p95)",
    ),
    ("overview.latency.tile", "Latency p50 / p95, 24 h"),
    ("overview.month", "Cost this month"),
    ("overview.none", "No requests yet."),
    ("overview.quota", "quotas"),
    ("overview.range", "Chart range"),
    ("overview.range.24h", "24 hours, 10-minute buckets"),
    ("overview.range.3h", "3 hours, 1-minute buckets"),
    ("overview.requests", "Requests, 24 h"),
    ("overview.saved", "saved by failover"),
    ("overview.success", "success"),
    ("overview.today", "Cost today"),
    ("overview.tokens", "tokens"),
    ("overview.traffic", "Traffic"),
    ("overview.ttft", "TTFT"),
    ("overview.verdict.steady", "All steady."),
    ("overview.verdict.credentials", "Credentials: {list}."),
    ("overview.verdict.cooling", "{n} cooling"),
    ("overview.verdict.disabled", "{n} disabled"),
    ("list.sep", ", "),
    (
        "overview.verdict.errors",
        "Error rate {pct} in the last 15 min.",
    ),
    ("overview.relogin", "needs a new sign-in"),
    ("overview.kind.cooling", "cooling"),
    ("overview.kind.disabled", "disabled"),
    ("overview.kind.near", "near a limit"),
    ("overview.top.models", "Top models, 24 h"),
    ("overview.top.keys", "Top keys, 24 h"),
    ("overview.top.credentials", "Top credentials, 24 h"),
    ("reason.quota", "quota (429)"),
    ("reason.server_error", "server errors"),
    ("chart.ok", "success"),
    ("chart.saved", "saved by failover"),
    ("chart.4xx", "4xx"),
    ("chart.5xx", "5xx"),
    ("chart.latency50", "latency p50"),
    ("chart.latency95", "latency p95"),
    ("chart.ttft50", "TTFT p50"),
    ("chart.ttft95", "TTFT p95"),
    ("chart.requests", "requests"),
    ("chart.ms", "ms"),
    ("chart.nodata", "No data in this range yet."),
];

pub(crate) const ZH: &[(&str, &str)] = &[
    ("app.name", "Sluice"),
    ("nav.overview", "总览"),
    ("nav.credentials", "上游凭据"),
    ("nav.keys", "密钥"),
    ("nav.requests", "请求"),
    ("nav.usage", "用量"),
    ("nav.users", "用户"),
    ("nav.me", "我的"),
    ("nav.system", "系统"),
    ("nav.signout", "退出登录"),
    ("nav.skip", "跳到正文"),
    ("prefs.language", "语言"),
    ("prefs.theme", "主题"),
    ("prefs.theme.auto", "自动"),
    ("prefs.theme.light", "浅色"),
    ("prefs.theme.dark", "深色"),
    ("prefs.apply", "应用"),
    ("login.title", "登录"),
    ("login.username", "用户名"),
    ("login.password", "密码"),
    ("login.submit", "登录"),
    ("login.failed", "用户名或密码错误。"),
    ("login.limited", "尝试次数过多，请稍后再试。"),
    ("login.ended", "会话已结束，请重新登录。"),
    ("firstrun.title", "首次运行：尚无管理员"),
    (
        "firstrun.lead",
        "创建管理员账号之前无人能登录。用以下任一方式创建，然后刷新本页。",
    ),
    ("firstrun.cli", "使用命令行（密码从标准输入读取）："),
    (
        "firstrun.config",
        "或写入配置文件后重启 Sluice（启动时若不存在则创建该管理员）：",
    ),
    ("system.title", "系统"),
    ("system.version", "版本"),
    ("system.uptime", "运行时长"),
    ("system.started", "启动时间"),
    ("system.datadir", "数据目录"),
    ("system.store", "存储"),
    ("system.dbsize", "数据库大小"),
    ("system.backlog", "待写入的用量记录"),
    ("system.remote", "远程管理"),
    ("system.remote.on", "允许其他机器访问（需管理密钥）"),
    ("system.remote.off", "仅限本机"),
    ("system.mgmtkey", "管理密钥"),
    ("system.mgmtkey.set", "已设置"),
    ("system.mgmtkey.unset", "未设置：管理 API 一律返回 403"),
    ("system.providers", "提供方 / 凭据"),
    ("system.links", "其他接口"),
    ("system.notapplicable", "不适用"),
    ("notfound.title", "未找到"),
    ("notfound.lead", "这里没有仪表盘页面。"),
    ("forbidden.title", "无权访问"),
    (
        "forbidden.lead",
        "此页面仅限管理员。你自己的密钥、用量与限额在“我的”页面。",
    ),
    ("me.keys", "我的密钥"),
    ("me.nokeys", "你还没有密钥。"),
    ("me.role", "角色"),
    ("requests.user", "用户"),
    ("requests.credential", "上游凭据"),
    ("requests.ttftabove", "首字延迟高于（毫秒）"),
    ("requests.tail", "实时"),
    ("requests.tail.live", "新请求显示在最上方"),
    ("requests.tail.paused", "阅读时已暂停"),
    ("requests.tail.show", "显示新请求："),
    ("users.title", "用户"),
    ("users.username", "用户名"),
    ("users.password", "密码"),
    ("users.role", "角色"),
    ("users.created", "创建时间"),
    ("users.requests.month", "本月请求"),
    ("users.cost.month", "本月费用"),
    ("users.setrole", "设置角色"),
    ("users.resetpw", "重置密码"),
    ("users.newpw", "新密码"),
    ("users.resetpw.confirm", "确认设置（其所有会话将退出）"),
    ("users.create", "新建用户"),
    ("users.create.submit", "创建用户"),
    ("users.usage", "最近 30 天用量（按模型）"),
    ("me.limits", "我的限额"),
    ("me.keycap", "密钥（已有 / 上限）"),
    ("me.budget", "本月 / 月度预算"),
    ("me.ceilings", "单个密钥的上限"),
    ("me.usage", "最近 30 天我的用量（按模型）"),
    ("me.snippets", "客户端配置"),
    (
        "me.snippets.lead",
        "把你的某个密钥填到 YOUR_SLUICE_KEY 处（密钥只在创建或轮换时显示一次）。",
    ),
    ("me.snippets.key", "YOUR_SLUICE_KEY"),
    ("usage.title", "用量"),
    ("usage.grain", "粒度"),
    ("usage.grain.hour", "小时"),
    ("usage.grain.day", "天"),
    ("usage.by", "分组"),
    ("usage.by.key", "密钥"),
    ("usage.by.user", "用户"),
    ("usage.by.model", "模型"),
    ("usage.by.provider", "供应商"),
    ("usage.by.credential", "上游凭据"),
    ("usage.total", "合计"),
    ("usage.utc", "小时和日期按 UTC"),
    ("usage.periods", "按时段"),
    ("usage.failed", "失败"),
    ("usage.quota", "本月 / 配额"),
    ("usage.trend", "各时段请求数"),
    ("keys.name", "名称"),
    ("keys.prefix", "密钥"),
    ("keys.status", "状态"),
    ("keys.rate", "每分钟"),
    ("keys.daily", "每天"),
    ("keys.monthly", "月度额度"),
    ("keys.requests", "请求数"),
    ("keys.cost", "费用"),
    ("keys.lastused", "最近使用"),
    ("keys.never", "从未"),
    ("status.active", "启用"),
    ("status.disabled", "停用"),
    ("limit.unlimited", "不限"),
    ("requests.title", "请求"),
    ("requests.detail", "请求详情"),
    ("requests.range", "时间范围"),
    ("requests.key", "密钥"),
    ("requests.model", "模型"),
    ("requests.provider", "提供方"),
    ("requests.status", "状态"),
    ("requests.stream", "流式"),
    ("requests.yes", "是"),
    ("requests.no", "否"),
    ("requests.failover", "发生过故障转移"),
    ("requests.csv", "导出 CSV"),
    ("requests.time", "时间"),
    ("requests.route", "凭据"),
    ("requests.dialects", "客户端 → 上游协议"),
    ("requests.in", "输入"),
    ("requests.out", "输出"),
    ("requests.cache", "缓存读 / 写"),
    ("requests.reasoning", "推理"),
    ("requests.latency", "延迟"),
    ("requests.attempts", "尝试次数"),
    ("requests.tries", "次尝试"),
    ("requests.estimated", "token 由 Sluice 估算（上游未报告）"),
    ("requests.none", "没有符合条件的请求。"),
    ("requests.newest", "最新"),
    ("requests.older", "更早"),
    ("requests.tokens", "Tokens"),
    ("requests.timeline", "故障转移时间线"),
    ("requests.noattempts", "没有上游尝试（在路由前被拒绝）。"),
    ("requests.cooldown", "触发冷却，直到"),
    ("keys.title", "密钥"),
    ("keys.actions", "操作"),
    ("keys.cancel", "取消"),
    ("keys.copied", "已复制"),
    ("keys.copy", "复制"),
    ("keys.create", "新建密钥"),
    ("keys.create.submit", "创建密钥"),
    ("keys.created.title", "你的新密钥"),
    (
        "keys.created.once",
        "密钥只显示这一次。Sluice 只保存其哈希值：请立即复制。",
    ),
    ("keys.created.confirm", "我已将此密钥妥善保存"),
    ("keys.created.done", "完成"),
    ("keys.default", "默认"),
    ("keys.delete", "删除"),
    ("keys.delete.confirm", "立即删除此密钥"),
    ("keys.rotate", "轮换"),
    ("keys.rotate.confirm", "立即换新密钥（旧密钥马上失效）"),
    ("keys.disable", "停用"),
    ("keys.enable", "启用"),
    ("keys.edit", "编辑"),
    ("keys.edit.title", "编辑密钥"),
    ("keys.expires", "过期时间"),
    ("keys.filter.all", "全部"),
    ("keys.filter.apply", "筛选"),
    ("keys.filter.near", "接近限额（80 %）"),
    ("keys.filter.owner", "所有者"),
    ("keys.models", "模型"),
    ("keys.models.hint", "全部（或以逗号分隔的列表）"),
    ("keys.none", "没有符合条件的密钥。"),
    ("keys.owner", "所有者"),
    ("keys.platforms", "平台"),
    ("keys.resets", "重置于"),
    ("keys.save", "保存"),
    ("keys.tokens", "tokens"),
    ("keys.snippet.openai", "OpenAI SDK（Python）"),
    ("keys.snippet.anthropic", "Anthropic SDK / Claude Code"),
    ("keys.snippet.gemini", "Gemini SDK（google-genai）"),
    ("keys.snippet.curl", "curl"),
    ("overview.title", "总览"),
    ("overview.asof", "截至"),
    ("overview.attention", "需要关注"),
    ("overview.col.cost", "费用"),
    ("overview.col.errors", "错误率"),
    ("overview.col.name", "名称"),
    ("overview.col.requests", "请求数"),
    ("overview.col.trend", "每小时请求数（24 小时）"),
    ("overview.col.ttft", "p95 首字延迟"),
    ("overview.credentials", "上游凭据"),
    ("overview.credentials.legend", "可用 / 冷却中 / 已停用"),
    ("overview.keysnear", "接近限额的密钥"),
    ("overview.keysnear.sub", "已达速率、每日或月度限额的 80 %"),
    ("overview.latency", "延迟与首字延迟（p50 / p95）"),
    ("overview.latency.tile", "延迟 p50 / p95（24 小时）"),
    ("overview.month", "本月费用"),
    ("overview.none", "暂无请求。"),
    ("overview.quota", "额度合计"),
    ("overview.range", "图表范围"),
    ("overview.range.24h", "24 小时，10 分钟粒度"),
    ("overview.range.3h", "3 小时，1 分钟粒度"),
    ("overview.requests", "请求数（24 小时）"),
    ("overview.saved", "故障转移挽回"),
    ("overview.success", "成功率"),
    ("overview.today", "今日费用"),
    ("overview.tokens", "tokens"),
    ("overview.traffic", "流量"),
    ("overview.ttft", "首字延迟"),
    ("overview.verdict.steady", "一切正常。"),
    ("overview.verdict.credentials", "上游凭据：{list}。"),
    ("overview.verdict.cooling", "{n} 个冷却中"),
    ("overview.verdict.disabled", "{n} 个已停用"),
    ("list.sep", "，"),
    ("overview.verdict.errors", "最近 15 分钟错误率 {pct}。"),
    ("overview.relogin", "需要重新登录"),
    ("overview.kind.cooling", "冷却中"),
    ("overview.kind.disabled", "已停用"),
    ("overview.kind.near", "接近限额"),
    ("overview.top.models", "热门模型（24 小时）"),
    ("overview.top.keys", "热门密钥（24 小时）"),
    ("overview.top.credentials", "热门凭据（24 小时）"),
    ("reason.quota", "额度用尽（429）"),
    ("reason.server_error", "上游服务器错误"),
    ("chart.ok", "成功"),
    ("chart.saved", "故障转移挽回"),
    ("chart.4xx", "4xx"),
    ("chart.5xx", "5xx"),
    ("chart.latency50", "延迟 p50"),
    ("chart.latency95", "延迟 p95"),
    ("chart.ttft50", "首字 p50"),
    ("chart.ttft95", "首字 p95"),
    ("chart.requests", "请求数"),
    ("chart.ms", "毫秒"),
    ("chart.nodata", "此范围内暂无数据。"),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys() {
        let keys = |lang| -> Vec<&str> {
            tables(lang)
                .iter()
                .flat_map(|t| t.iter())
                .map(|(k, _)| *k)
                .collect()
        };
        let en = keys(Lang::En);
        assert_eq!(en, keys(Lang::Zh));
        let mut unique = en.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), en.len(), "a key is defined twice");
    }

    #[test]
    fn every_key_the_templates_use_exists() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut used = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for piece in text.split("t(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                assert_ne!(Lang::En.t(key), "??", "missing text key {key}");
                used += 1;
            }
        }
        assert!(used > 20);
    }

    #[test]
    fn accept_language_and_cookie_choose() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert(
            "accept-language",
            "fr;q=1, zh-CN;q=0.8, en;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::of(&h), Lang::Zh);
        h.insert("cookie", "sluice_lang=en".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::En);
    }
}
