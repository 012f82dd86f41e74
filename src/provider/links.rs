//! Which links the bot fetches images from. The provider's answer names its result links, so a
//! hostile or compromised answer could point the bot at its cloud's metadata service
//! (`http://169.254.169.254/…`) or at a service inside its network. A link is fetched only when it
//! is `https` to a public address, or on the provider's own host (`SHORTAPI_BASE_URL`, whose
//! scheme and address the operator chose). Literal addresses are checked when the answer is read;
//! names are checked when the connection is made ([`PublicOnly`]), so a name that resolves to a
//! private address, now or on a later lookup, is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};
use tracing::warn;

use super::{JobState, Phase};

/// The provider's own host and port: links there are fetched whatever their scheme and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedOrigin {
    host: String,
    port: u16,
}

impl TrustedOrigin {
    /// The origin of `base_url`; `None` when it has no host.
    pub fn of(base_url: &str) -> Option<TrustedOrigin> {
        let url = Url::parse(base_url).ok()?;
        Some(TrustedOrigin { host: url.host_str()?.to_owned(), port: url.port_or_known_default()? })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn holds(&self, url: &Url) -> bool {
        url.host_str() == Some(self.host.as_str()) && url.port_or_known_default() == Some(self.port)
    }
}

/// Why the bot will not fetch `link`, or `None` when it may (its name is checked again when
/// connecting).
pub fn refusal(link: &str, trusted: Option<&TrustedOrigin>) -> Option<&'static str> {
    let Ok(url) = Url::parse(link) else { return Some("not a link") };
    if trusted.is_some_and(|origin| origin.holds(&url)) {
        return None;
    }
    if url.scheme() != "https" {
        return Some("not https");
    }
    let Some(host) = url.host_str() else { return Some("no host") };
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Some("a private or local address"),
        _ => None,
    }
}

/// Whether `ip` is an ordinary address on the internet: not private, loopback, link-local,
/// unspecified, unique-local, shared (carrier-grade NAT), multicast, reserved or for documentation,
/// and not an IPv6 form of such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => {
                let documentation = v6.segments()[..2] == [0x2001, 0x0db8];
                let site_local = v6.segments()[0] & 0xffc0 == 0xfec0;
                !(v6.is_unspecified()
                    || v6.is_loopback()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || site_local
                    || documentation)
            }
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && b & 0xc0 == 64)
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && b & 0xfe == 18)
        || a >= 240)
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address, through
/// which an IPv6 link could reach an IPv4 one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match (s0, s1, s2, s3, s4, s5) {
        (0, 0, 0, 0, 0, 0 | 0xffff) => Some(v4(s6, s7)),
        (0x64, 0xff9b, 0, 0, 0, 0) => Some(v4(s6, s7)),
        (0x2002, ..) => Some(v4(s1, s2)),
        _ => None,
    }
}

/// `state` with the result links the bot will not fetch taken out. A job left without any is a
/// failure (refunded like any other), whose reason stays in the logs and the job's history; the
/// links themselves are never shown to users.
pub fn without_unsafe_links(mut state: JobState, trusted: Option<&TrustedOrigin>) -> JobState {
    let Phase::Succeeded(links) = &state.phase else { return state };
    let (usable, refused): (Vec<&String>, Vec<&String>) =
        links.iter().partition(|link| refusal(link, trusted).is_none());
    if refused.is_empty() {
        return state;
    }
    let refused: Vec<String> = refused
        .into_iter()
        .map(|link| {
            let shown = Url::parse(link).ok().and_then(|u| Some(format!("{}://{}", u.scheme(), u.host_str()?)));
            format!("{} ({})", shown.unwrap_or_else(|| "unreadable".into()), refusal(link, trusted).unwrap_or_default())
        })
        .collect();
    warn!(refused = ?refused, kept = usable.len(), "the provider answered with result links the bot does not fetch");
    state.phase = if usable.is_empty() {
        Phase::Failed(Some(format!("every result link was refused: {}", refused.join(", "))))
    } else {
        Phase::Succeeded(usable.into_iter().cloned().collect())
    };
    state
}

/// A resolver that gives out only public addresses, except for the provider's own host: the
/// download client connects to nothing else, whatever a name resolves to at that moment.
#[derive(Debug, Clone)]
pub struct PublicOnly {
    pub trusted_host: Option<String>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.trusted_host.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found.into_iter().filter(|a| trusted || is_public(a.ip())).collect();
            if usable.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ordinary_internet_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "198.18.0.1",
            "192.0.2.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in
            ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "162.159.128.233", "2606:4700::1111", "::ffff:8.8.8.8"]
        {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn links_must_be_https_to_a_public_host_or_on_the_provider() {
        let provider = TrustedOrigin::of("http://127.0.0.1:4000").unwrap();
        let trusted = Some(&provider);
        for allowed in [
            "https://cdn.example.com/a.png",
            "https://8.8.8.8/a.png",
            "http://127.0.0.1:4000/images/a.png",
            "https://127.0.0.1:4000/images/a.png",
        ] {
            assert_eq!(refusal(allowed, trusted), None, "{allowed}");
        }
        for (refused, why) in [
            ("http://cdn.example.com/a.png", "not https"),
            ("http://169.254.169.254/latest/meta-data", "not https"),
            ("https://169.254.169.254/latest/meta-data", "a private or local address"),
            ("https://10.0.0.1/x.png", "a private or local address"),
            ("https://127.0.0.1:4001/images/a.png", "a private or local address"),
            ("https://0x7f.1/a.png", "a private or local address"),
            ("https://2130706433/a.png", "a private or local address"),
            ("https://[::1]/a.png", "a private or local address"),
            ("https://[::ffff:a9fe:a9fe]/a.png", "a private or local address"),
            ("ftp://cdn.example.com/a.png", "not https"),
            ("not a link", "not a link"),
        ] {
            assert_eq!(refusal(refused, trusted), Some(why), "{refused}");
        }
        // Without a trusted origin the provider's own address is held to the same rules.
        assert_eq!(refusal("http://127.0.0.1:4000/images/a.png", None), Some("not https"));
        assert_eq!(TrustedOrigin::of("https://api.shortapi.ai").unwrap().port, 443);
    }

    #[test]
    fn unsafe_links_are_taken_out_of_an_answer() {
        let provider = TrustedOrigin::of("http://127.0.0.1:4000").unwrap();
        let answer = |links: &[&str]| JobState {
            phase: Phase::Succeeded(links.iter().map(|l| (*l).to_owned()).collect()),
            raw_status: "2".into(),
            progress: None,
        };
        let mixed = answer(&["http://10.0.0.1/x.png", "https://cdn.example.com/a.png"]);
        assert_eq!(
            without_unsafe_links(mixed, Some(&provider)).phase,
            Phase::Succeeded(vec!["https://cdn.example.com/a.png".into()])
        );
        let hostile = answer(&["http://169.254.169.254/latest/meta-data", "https://10.0.0.1/x.png"]);
        let Phase::Failed(Some(reason)) = without_unsafe_links(hostile, Some(&provider)).phase else {
            panic!("a job without a usable link is a failure")
        };
        assert_eq!(
            reason,
            "every result link was refused: http://169.254.169.254 (not https), \
             https://10.0.0.1 (a private or local address)"
        );
        assert!(!crate::provider::concerns_the_request(&reason, None), "the reason is not for the public");
        let safe = answer(&["http://127.0.0.1:4000/images/a.png"]);
        assert_eq!(without_unsafe_links(safe.clone(), Some(&provider)), safe);
        let running = JobState { phase: Phase::Running, raw_status: "1".into(), progress: None };
        assert_eq!(without_unsafe_links(running.clone(), None), running);
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused_when_connecting() {
        let resolve = |trusted: Option<&str>, name: &str| {
            PublicOnly { trusted_host: trusted.map(str::to_owned) }.resolve(name.parse().unwrap())
        };
        assert!(resolve(None, "localhost").await.is_err(), "localhost is not public");
        let trusted: Vec<SocketAddr> = resolve(Some("localhost"), "localhost").await.unwrap().collect();
        assert!(trusted.iter().all(|a| a.ip().is_loopback()) && !trusted.is_empty(), "{trusted:?}");
    }
}
