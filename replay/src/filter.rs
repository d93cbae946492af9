//! Which exchanges the user asked to see (`--pid`, `--comm`, `--host`, `--url`).

use regex::Regex;

use crate::exchange::Exchange;
use crate::pipeline::Replayed;
use crate::trace_input::ConnectionInfo;

/// A filter over exchanges; an empty filter keeps everything. All given criteria must hold;
/// within one criterion any of the values may match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Process ids.
    pub pids: Vec<u32>,
    /// Process comms (exact).
    pub comms: Vec<String>,
    /// Hosts: a URL's host equals one, or is a subdomain of one (case-insensitive).
    pub hosts: Vec<String>,
    /// URL patterns: each matches as a substring or, when it is a valid regex, as a regex.
    pub urls: Vec<UrlPattern>,
}

/// A `--url` value.
#[derive(Debug, Clone)]
pub struct UrlPattern {
    text: String,
    regex: Option<Regex>,
}

impl UrlPattern {
    /// Parses a pattern. Text that is not a valid regex still matches as a substring.
    pub fn new(text: &str) -> UrlPattern {
        UrlPattern {
            text: text.to_string(),
            regex: Regex::new(text).ok(),
        }
    }

    fn matches(&self, url: &str) -> bool {
        url.contains(&self.text) || self.regex.as_ref().is_some_and(|r| r.is_match(url))
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host.split(':').next().unwrap_or(host)
}

impl Filter {
    /// Whether no criterion is set.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
            && self.comms.is_empty()
            && self.hosts.is_empty()
            && self.urls.is_empty()
    }

    /// Whether the process of connection `info` passes (what can be said before any exchange).
    pub fn keeps_process(&self, info: &ConnectionInfo) -> bool {
        if !self.pids.is_empty() && !self.pids.contains(&info.pid) {
            return false;
        }
        self.comms.is_empty()
            || info
                .process
                .as_ref()
                .is_some_and(|p| self.comms.contains(&p.comm))
    }

    /// Whether `ex` on the connection `info` passes.
    pub fn keeps(&self, info: &ConnectionInfo, ex: &Exchange) -> bool {
        if !self.keeps_process(info) {
            return false;
        }
        if self.hosts.is_empty() && self.urls.is_empty() {
            return true;
        }
        let url = crate::pipeline::exchange_url(ex, info);
        if !self.hosts.is_empty() {
            let host = host_of(&url).to_ascii_lowercase();
            let ok = self.hosts.iter().any(|h| {
                let h = h.to_ascii_lowercase();
                host == h || host.ends_with(&format!(".{h}"))
            });
            if !ok {
                return false;
            }
        }
        self.urls.is_empty() || self.urls.iter().any(|p| p.matches(&url))
    }

    /// Drops the exchanges this filter does not keep from the output order.
    pub fn apply(&self, replayed: &mut Replayed<'_>) {
        if self.is_empty() {
            return;
        }
        let conns = &replayed.connections;
        replayed.order.retain(|&(c, e)| {
            let conn = &conns[c];
            self.keeps(&conn.info, &conn.result.exchanges[e])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_extracted_from_urls() {
        assert_eq!(host_of("https://example.test:8443/a?b"), "example.test");
        assert_eq!(host_of("https://[::1]:443/"), "::1");
        assert_eq!(host_of("https://u:p@h.test/"), "h.test");
        assert_eq!(host_of("https://h.test"), "h.test");
    }

    #[test]
    fn url_patterns_match_as_substring_or_regex() {
        assert!(UrlPattern::new("/api?x=1").matches("https://h/api?x=1"));
        assert!(UrlPattern::new(r"/v\d+/").matches("https://h/v2/users"));
        assert!(!UrlPattern::new(r"/v\d+/").matches("https://h/vx/users"));
    }
}
