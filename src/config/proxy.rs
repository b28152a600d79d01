//! Trusted proxy headers: `WSGITrustedProxyHeaders` and `WSGITrustedProxies`, and how they
//! rewrite a request's CGI variables (mod_wsgi 6.x behaviour).
//!
//! # Directives
//!
//! - [`parse_trusted_proxy_headers`] reads `WSGITrustedProxyHeaders NAME...` (raw argument
//!   text) into a list of [`ProxyHeader`]s, in the order written. Names are case-insensitive
//!   and `-`/`_` are interchangeable; a name mod_wsgi does not know is a configuration error
//!   (mod_wsgi silently ignores it, which hides typos such as `X-Forwarded-Fro`).
//! - [`parse_trusted_proxies`] reads `WSGITrustedProxies ADDRESS...` into [`TrustedProxies`].
//!   An address is an IPv4 or IPv6 address, `address/prefix-length`, an IPv4
//!   `address/dotted-netmask`, or a partial IPv4 network such as `10` or `192.168` (the forms
//!   APR's `apr_ipsubnet_create` takes). Host names are not accepted (nothing is looked up).
//!   A range covering everything (`0.0.0.0/0`, `::/0`) is refused: leaving the directive out
//!   already trusts every peer.
//! - Either directive with no argument is an error (mod_wsgi accepts it; an empty
//!   WSGITrustedProxies list would silently distrust every peer).
//!
//! Both directives are allowed at server, virtual host, directory and .htaccess level. As in
//! mod_wsgi, repeating a directive in the same context adds to its list
//! ([`TrustedProxies::extend`], `Vec::extend` for headers) and a more specific context
//! replaces the inherited list wholesale (store them as `Option`s and merge with
//! `over.or(base)`, like the other `DirSettings` fields).
//!
//! # Per request
//!
//! When a WSGITrustedProxyHeaders list is in force, call [`process_proxy_headers`] after the
//! CGI variables are built (HTTP_*, REMOTE_ADDR, SERVER_NAME, SERVER_PORT, SCRIPT_NAME, and
//! `HTTPS` if mod_ssl or SetEnv set it) and after `mod_wsgi.script_name`/`mod_wsgi.path_info`
//! have recorded the original values. It reads and edits the variables through the small
//! [`CgiVars`] trait (implemented here for `Vec<(String, Vec<u8>)>`; a borrowed vector can
//! implement it with pool-allocated values). Then:
//!
//! - compute `wsgi.url_scheme` with [`ProxyOutcome::url_scheme`], giving it the `HTTPS`
//!   variable *after* processing and whether Apache's own connection is HTTPS: a trusted
//!   scheme header overrides mod_ssl's view, otherwise either one makes it `https`. The
//!   `HTTPS` variable itself is not passed to the application;
//! - name interpreters (`%{RESOURCE}`) from the original script name, not the proxied
//!   `SCRIPT_NAME`, as mod_wsgi does.
//!
//! ```text
//! let outcome = process_proxy_headers(&headers, proxies.as_ref(), peer_ip, &mut vars);
//! let scheme = outcome.url_scheme(CgiVars::get(&vars, "HTTPS"), connection_is_https);
//! CgiVars::remove(&mut vars, "HTTPS");
//! ```
//!
//! # Behaviour
//!
//! The peer (`peer_ip`, Apache's `r->useragent_ip`, i.e. REMOTE_ADDR before processing) is
//! trusted when WSGITrustedProxies is not set, or when it lies in one of its ranges; a peer
//! that is not an IP literal is not trusted. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`)
//! matches IPv4 ranges.
//!
//! Headers fall into categories; each listed header is handled in the order of the directive:
//!
//! | category  | headers                                                  | rewrites |
//! |-----------|----------------------------------------------------------|----------|
//! | client    | X-Forwarded-For, X-Client-IP, X-Real-IP                  | REMOTE_ADDR |
//! | host      | X-Forwarded-Host, X-Host                                 | HTTP_HOST |
//! | server    | X-Forwarded-Server                                       | SERVER_NAME |
//! | port      | X-Forwarded-Port                                         | SERVER_PORT |
//! | script    | X-Script-Name, X-Forwarded-Script-Name                   | SCRIPT_NAME and `mod_wsgi.mount_point` |
//! | scheme    | X-Forwarded-Proto, X-Forwarded-Scheme, X-Scheme          | HTTPS: `https` sets "1", `http` removes it |
//! | scheme    | X-Forwarded-HTTPS, X-Forwarded-SSL, X-HTTPS              | HTTPS: on/true/1 set "1", off/false/0 remove it |
//!
//! - From a trusted peer, every listed header that is present (even with an empty value) is
//!   applied, values as sent. Scheme values are compared without regard to case; any other
//!   value changes nothing but still counts as the proxy having decided the scheme.
//! - After that, for every category with at least one listed header, all headers of that
//!   category are removed from the variables except the one applied last. So from an
//!   untrusted peer every header of a listed category disappears and nothing is rewritten,
//!   and a spoofed `X-Real-IP` cannot ride along with a trusted `X-Forwarded-For`. When two
//!   headers of one category are listed and both are sent, the one listed later wins (mod_wsgi
//!   documents the choice as indeterminate and says to list one).
//! - Categories with no listed header are left alone: their headers stay ordinary HTTP_*
//!   variables. (X-Forwarded-Server and X-Forwarded-Port are categories of their own, so they
//!   too are removed from an untrusted peer, as in mod_wsgi 6; mod_wsgi 4.9 left them.)
//!
//! X-Forwarded-For is a comma-separated list; empty elements and the whitespace around
//! elements are ignored (RFC 9110 section 5.6.1).
//! - Without WSGITrustedProxies, REMOTE_ADDR becomes the first element and
//!   HTTP_X_FORWARDED_FOR is kept as sent.
//! - With WSGITrustedProxies, the list is walked from the right past elements that are
//!   trusted proxies; the first element that is not (or is not an IP literal) is the client.
//!   REMOTE_ADDR becomes that element and HTTP_X_FORWARDED_FOR the list from it to the end,
//!   joined with ", ". If every element is a trusted proxy the leftmost is used; if the
//!   rightmost is not, it is used and becomes the whole HTTP_X_FORWARDED_FOR.
//! - A list with no element leaves REMOTE_ADDR alone.
//!
//! X-Client-IP and X-Real-IP set REMOTE_ADDR to their value as sent.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ConfigResult;
use super::options::suggest;
use super::words::words;

const HEADERS_DIRECTIVE: &str = "WSGITrustedProxyHeaders";
const PROXIES_DIRECTIVE: &str = "WSGITrustedProxies";
const PROXIES_EXAMPLE: &str = "WSGITrustedProxies 10.0.0.0/8 ::1";

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// What a proxy header tells the server about the original request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyCategory {
    /// The client's IP address (REMOTE_ADDR).
    ClientAddr,
    /// The Host the client asked for (HTTP_HOST).
    Host,
    /// The server name (SERVER_NAME).
    Server,
    /// The port the client connected to (SERVER_PORT).
    Port,
    /// Where the proxy mounted the application (SCRIPT_NAME).
    ScriptName,
    /// Whether the client used HTTPS (the HTTPS variable, hence `wsgi.url_scheme`).
    Scheme,
}

impl ProxyCategory {
    /// Every category, in a fixed order.
    pub const ALL: [ProxyCategory; 6] = [
        ProxyCategory::ClientAddr,
        ProxyCategory::Host,
        ProxyCategory::Server,
        ProxyCategory::Port,
        ProxyCategory::ScriptName,
        ProxyCategory::Scheme,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The headers of this category.
    pub fn headers(self) -> impl Iterator<Item = ProxyHeader> {
        ProxyHeader::ALL
            .into_iter()
            .filter(move |h| h.category() == self)
    }
}

/// A proxy header mod_wsgi knows how to trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyHeader {
    XForwardedFor,
    XClientIp,
    XRealIp,
    XForwardedHost,
    XHost,
    XForwardedServer,
    XForwardedPort,
    XScriptName,
    XForwardedScriptName,
    XForwardedProto,
    XForwardedScheme,
    XScheme,
    XForwardedHttps,
    XForwardedSsl,
    XHttps,
}

impl ProxyHeader {
    /// Every supported header, grouped by category.
    pub const ALL: [ProxyHeader; 15] = [
        ProxyHeader::XForwardedFor,
        ProxyHeader::XClientIp,
        ProxyHeader::XRealIp,
        ProxyHeader::XForwardedHost,
        ProxyHeader::XHost,
        ProxyHeader::XForwardedServer,
        ProxyHeader::XForwardedPort,
        ProxyHeader::XScriptName,
        ProxyHeader::XForwardedScriptName,
        ProxyHeader::XForwardedProto,
        ProxyHeader::XForwardedScheme,
        ProxyHeader::XScheme,
        ProxyHeader::XForwardedHttps,
        ProxyHeader::XForwardedSsl,
        ProxyHeader::XHttps,
    ];

    /// The header's usual spelling, e.g. `X-Forwarded-For`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "X-Forwarded-For",
            ProxyHeader::XClientIp => "X-Client-IP",
            ProxyHeader::XRealIp => "X-Real-IP",
            ProxyHeader::XForwardedHost => "X-Forwarded-Host",
            ProxyHeader::XHost => "X-Host",
            ProxyHeader::XForwardedServer => "X-Forwarded-Server",
            ProxyHeader::XForwardedPort => "X-Forwarded-Port",
            ProxyHeader::XScriptName => "X-Script-Name",
            ProxyHeader::XForwardedScriptName => "X-Forwarded-Script-Name",
            ProxyHeader::XForwardedProto => "X-Forwarded-Proto",
            ProxyHeader::XForwardedScheme => "X-Forwarded-Scheme",
            ProxyHeader::XScheme => "X-Scheme",
            ProxyHeader::XForwardedHttps => "X-Forwarded-HTTPS",
            ProxyHeader::XForwardedSsl => "X-Forwarded-SSL",
            ProxyHeader::XHttps => "X-HTTPS",
        }
    }

    /// The CGI variable carrying the header, e.g. `HTTP_X_FORWARDED_FOR`.
    pub fn cgi_name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "HTTP_X_FORWARDED_FOR",
            ProxyHeader::XClientIp => "HTTP_X_CLIENT_IP",
            ProxyHeader::XRealIp => "HTTP_X_REAL_IP",
            ProxyHeader::XForwardedHost => "HTTP_X_FORWARDED_HOST",
            ProxyHeader::XHost => "HTTP_X_HOST",
            ProxyHeader::XForwardedServer => "HTTP_X_FORWARDED_SERVER",
            ProxyHeader::XForwardedPort => "HTTP_X_FORWARDED_PORT",
            ProxyHeader::XScriptName => "HTTP_X_SCRIPT_NAME",
            ProxyHeader::XForwardedScriptName => "HTTP_X_FORWARDED_SCRIPT_NAME",
            ProxyHeader::XForwardedProto => "HTTP_X_FORWARDED_PROTO",
            ProxyHeader::XForwardedScheme => "HTTP_X_FORWARDED_SCHEME",
            ProxyHeader::XScheme => "HTTP_X_SCHEME",
            ProxyHeader::XForwardedHttps => "HTTP_X_FORWARDED_HTTPS",
            ProxyHeader::XForwardedSsl => "HTTP_X_FORWARDED_SSL",
            ProxyHeader::XHttps => "HTTP_X_HTTPS",
        }
    }

    /// What the header is about.
    pub fn category(self) -> ProxyCategory {
        match self {
            ProxyHeader::XForwardedFor | ProxyHeader::XClientIp | ProxyHeader::XRealIp => {
                ProxyCategory::ClientAddr
            }
            ProxyHeader::XForwardedHost | ProxyHeader::XHost => ProxyCategory::Host,
            ProxyHeader::XForwardedServer => ProxyCategory::Server,
            ProxyHeader::XForwardedPort => ProxyCategory::Port,
            ProxyHeader::XScriptName | ProxyHeader::XForwardedScriptName => {
                ProxyCategory::ScriptName
            }
            ProxyHeader::XForwardedProto
            | ProxyHeader::XForwardedScheme
            | ProxyHeader::XScheme
            | ProxyHeader::XForwardedHttps
            | ProxyHeader::XForwardedSsl
            | ProxyHeader::XHttps => ProxyCategory::Scheme,
        }
    }

    /// The header named `name`, in any case, with `-` or `_` between words (the name is
    /// turned into a CGI variable name the way Apache does, and compared with that).
    pub fn from_name(name: &str) -> Option<ProxyHeader> {
        let cgi: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        ProxyHeader::ALL
            .into_iter()
            .find(|h| h.cgi_name().strip_prefix("HTTP_") == Some(cgi.as_str()))
    }
}

impl fmt::Display for ProxyHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse a WSGITrustedProxyHeaders line: one or more header names, kept in the order
/// written (the order decides which header wins when two of one category are listed).
pub fn parse_trusted_proxy_headers(raw: &str) -> ConfigResult<Vec<ProxyHeader>> {
    let names = words(raw);
    if names.is_empty() {
        return Err(format!(
            "{HEADERS_DIRECTIVE}: no header given; write e.g. {HEADERS_DIRECTIVE} X-Forwarded-For X-Forwarded-Proto"
        ));
    }
    names
        .iter()
        .map(|name| ProxyHeader::from_name(name).ok_or_else(|| unknown_header(name)))
        .collect()
}

fn unknown_header(name: &str) -> String {
    let lower: Vec<String> = ProxyHeader::ALL
        .iter()
        .map(|h| h.name().to_ascii_lowercase())
        .collect();
    let valid: Vec<&str> = lower.iter().map(String::as_str).collect();
    let shown = if name.is_empty() { "''" } else { name };
    let mut msg =
        format!("{HEADERS_DIRECTIVE}: '{shown}' is not a proxy header mod_wsgi supports; ");
    match suggest(name, &valid) {
        Some(s) => {
            let header = ProxyHeader::from_name(s).map_or("?", ProxyHeader::name);
            msg.push_str(&format!("did you mean {header}?"));
        }
        None => {
            let all: Vec<&str> = ProxyHeader::ALL.iter().map(|h| h.name()).collect();
            msg.push_str(&format!("use one of {}", all.join(", ")));
        }
    }
    msg
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// One WSGITrustedProxies entry: an address, or a network given by an address and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange(Net);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Net {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl IpRange {
    /// The range of exactly one address.
    pub fn single(ip: IpAddr) -> IpRange {
        match unmap(ip) {
            IpAddr::V4(a) => IpRange(Net::V4 {
                net: u32::from(a),
                mask: u32::MAX,
            }),
            IpAddr::V6(a) => IpRange(Net::V6 {
                net: u128::from(a),
                mask: u128::MAX,
            }),
        }
    }

    /// Whether `ip` lies in the range. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.0, unmap(ip)) {
            (Net::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == net,
            (Net::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == net,
            _ => false,
        }
    }

    /// Parse one entry; the error is the directive's message.
    pub fn parse(entry: &str) -> ConfigResult<IpRange> {
        parse_range(entry).map_err(|why| {
            let shown = if entry.is_empty() { "''" } else { entry };
            match why {
                Why::Everything => format!(
                    "{PROXIES_DIRECTIVE}: '{shown}' would trust every address; every peer is already trusted when {PROXIES_DIRECTIVE} is left out, so remove it or name the proxies, e.g. {PROXIES_EXAMPLE}"
                ),
                Why::HostName => format!(
                    "{PROXIES_DIRECTIVE}: '{shown}' is not an IP address or CIDR range (host names are not looked up); write e.g. {PROXIES_EXAMPLE}"
                ),
                Why::Syntax => format!(
                    "{PROXIES_DIRECTIVE}: '{shown}' is not an IP address or CIDR range; write e.g. {PROXIES_EXAMPLE}"
                ),
            }
        })
    }
}

impl fmt::Display for IpRange {
    /// `10.0.0.0/8`, `2001:db8::/32`, a lone address without a suffix, or an IPv4 address with
    /// its dotted mask when the mask is not a prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Net::V4 { net, mask } => {
                write!(f, "{}", Ipv4Addr::from(net))?;
                if mask == u32::MAX {
                    Ok(())
                } else if mask.leading_ones() + mask.trailing_zeros() == 32 {
                    write!(f, "/{}", mask.leading_ones())
                } else {
                    write!(f, "/{}", Ipv4Addr::from(mask))
                }
            }
            Net::V6 { net, mask } => {
                write!(f, "{}", Ipv6Addr::from(net))?;
                if mask == u128::MAX {
                    Ok(())
                } else {
                    write!(f, "/{}", mask.leading_ones())
                }
            }
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpRange::parse(s)
    }
}

/// Why an entry was refused.
enum Why {
    Syntax,
    HostName,
    Everything,
}

fn parse_range(entry: &str) -> Result<IpRange, Why> {
    let (addr, mask) = match entry.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (entry, None),
    };
    if addr.contains(':') {
        let ip: Ipv6Addr = addr.parse().map_err(|_| Why::Syntax)?;
        let bits = match mask {
            None => 128,
            Some(m) => prefix_len(m, 128)?,
        };
        // An IPv4-mapped address with a prefix inside its IPv4 part is an IPv4 range.
        if let Some(v4) = ip.to_ipv4_mapped()
            && bits >= 96
        {
            let mask = v4_mask(bits - 96);
            return Ok(IpRange(Net::V4 {
                net: u32::from(v4) & mask,
                mask,
            }));
        }
        let mask = v6_mask(bits);
        return Ok(IpRange(Net::V6 {
            net: u128::from(ip) & mask,
            mask,
        }));
    }
    if addr.bytes().any(|b| b.is_ascii_alphabetic()) && mask.is_none() {
        return Err(Why::HostName);
    }
    match mask {
        None => match addr.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(IpRange(Net::V4 {
                net: u32::from(ip),
                mask: u32::MAX,
            })),
            Err(_) => partial_network(addr).ok_or(Why::Syntax),
        },
        Some(m) => {
            let ip: Ipv4Addr = addr.parse().map_err(|_| Why::Syntax)?;
            let mask = if m.contains('.') {
                let mask = u32::from(m.parse::<Ipv4Addr>().map_err(|_| Why::Syntax)?);
                if mask == 0 {
                    return Err(Why::Everything);
                }
                mask
            } else {
                v4_mask(prefix_len(m, 32)?)
            };
            Ok(IpRange(Net::V4 {
                net: u32::from(ip) & mask,
                mask,
            }))
        }
    }
}

/// A decimal prefix length from 1 to `max`.
fn prefix_len(text: &str, max: u32) -> Result<u32, Why> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Why::Syntax);
    }
    match text.parse::<u32>() {
        Ok(0) => Err(Why::Everything),
        Ok(n) if n <= max => Ok(n),
        _ => Err(Why::Syntax),
    }
}

/// `10`, `10.1` or `10.1.2`: the network of those leading octets (as Apache's `Require ip`).
fn partial_network(text: &str) -> Option<IpRange> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut net = 0u32;
    for (i, part) in parts.iter().enumerate() {
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !ok {
            return None;
        }
        let octet: u8 = part.parse().ok()?;
        net |= u32::from(octet) << (24 - 8 * i);
    }
    let mask = v4_mask(8 * parts.len() as u32);
    Some(IpRange(Net::V4 { net, mask }))
}

fn v4_mask(bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    }
}

fn v6_mask(bits: u32) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, everything else unchanged.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The WSGITrustedProxies list in force: the proxies whose headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<IpRange>,
}

impl TrustedProxies {
    /// A list of the given ranges.
    pub fn new(ranges: Vec<IpRange>) -> TrustedProxies {
        TrustedProxies { ranges }
    }

    /// The ranges, in the order written.
    pub fn ranges(&self) -> &[IpRange] {
        &self.ranges
    }

    /// Add the entries of a further WSGITrustedProxies line of the same context.
    pub fn extend(&mut self, more: TrustedProxies) {
        self.ranges.extend(more.ranges);
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether the text is an IP address (no brackets, port or zone) that is one of the
    /// trusted proxies.
    pub fn contains_str(&self, ip: &str) -> bool {
        parse_ip(ip.as_bytes()).is_some_and(|ip| self.contains(ip))
    }
}

/// Parse a WSGITrustedProxies line: one or more addresses or ranges.
pub fn parse_trusted_proxies(raw: &str) -> ConfigResult<TrustedProxies> {
    let entries = words(raw);
    if entries.is_empty() {
        return Err(format!(
            "{PROXIES_DIRECTIVE}: no address given; write e.g. {PROXIES_EXAMPLE}"
        ));
    }
    let ranges = entries
        .iter()
        .map(|e| IpRange::parse(e))
        .collect::<ConfigResult<Vec<_>>>()?;
    Ok(TrustedProxies { ranges })
}

fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Request processing
// ---------------------------------------------------------------------------------------------

/// Read and write access to a request's CGI variables, for [`process_proxy_headers`].
pub trait CgiVars {
    /// The value of `name` (the first, if it occurs more than once).
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Set `name` to `value`, replacing every existing value.
    fn set(&mut self, name: &'static str, value: Vec<u8>);
    /// Remove every value of `name`.
    fn remove(&mut self, name: &str);
}

impl CgiVars for Vec<(String, Vec<u8>)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    fn set(&mut self, name: &'static str, value: Vec<u8>) {
        match self.iter().position(|(k, _)| k == name) {
            Some(first) => {
                self[first].1 = value;
                let mut i = 0;
                self.retain(|(k, _)| {
                    let keep = i <= first || k != name;
                    i += 1;
                    keep
                });
            }
            None => self.push((name.to_string(), value)),
        }
    }

    fn remove(&mut self, name: &str) {
        self.retain(|(k, _)| k != name);
    }
}

/// What [`process_proxy_headers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyOutcome {
    /// Whether the peer's headers were believed (always, without WSGITrustedProxies).
    pub peer_trusted: bool,
    /// The header applied for each category that was rewritten (at most one per category,
    /// the one kept in the variables), in [`ProxyCategory::ALL`] order.
    pub applied: Vec<ProxyHeader>,
}

impl ProxyOutcome {
    /// Whether a trusted header of `category` was applied.
    pub fn applied(&self, category: ProxyCategory) -> bool {
        self.applied.iter().any(|h| h.category() == category)
    }

    /// `wsgi.url_scheme`: `https_var` is the HTTPS variable after processing and
    /// `connection_is_https` says whether Apache's own connection is HTTPS (mod_ssl). A trusted
    /// scheme header decides alone; otherwise either HTTPS=on/1 or the connection makes it
    /// `https`.
    pub fn url_scheme(&self, https_var: Option<&[u8]>, connection_is_https: bool) -> &'static str {
        let var_on = https_var.is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
        let https = if self.applied(ProxyCategory::Scheme) {
            var_on
        } else {
            var_on || connection_is_https
        };
        if https { "https" } else { "http" }
    }
}

/// Apply the trusted proxy headers `headers` (the WSGITrustedProxyHeaders list in force) to
/// `vars` for a request whose peer is `peer_ip`; `proxies` is the WSGITrustedProxies list in
/// force, if any. See the module documentation for the rules.
pub fn process_proxy_headers<V: CgiVars + ?Sized>(
    headers: &[ProxyHeader],
    proxies: Option<&TrustedProxies>,
    peer_ip: &str,
    vars: &mut V,
) -> ProxyOutcome {
    let peer_trusted = proxies.is_none_or(|p| p.contains_str(peer_ip));
    let mut listed = [false; ProxyCategory::ALL.len()];
    let mut winner: [Option<ProxyHeader>; ProxyCategory::ALL.len()] = [None; 6];

    for &header in headers {
        let category = header.category().index();
        listed[category] = true;
        if !peer_trusted {
            continue;
        }
        let Some(value) = vars.get(header.cgi_name()).map(<[u8]>::to_vec) else {
            continue;
        };
        apply_header(header, &value, proxies, vars);
        winner[category] = Some(header);
    }

    for category in ProxyCategory::ALL {
        if !listed[category.index()] {
            continue;
        }
        for header in category.headers() {
            if winner[category.index()] != Some(header) {
                vars.remove(header.cgi_name());
            }
        }
    }

    ProxyOutcome {
        peer_trusted,
        applied: winner.into_iter().flatten().collect(),
    }
}

fn apply_header<V: CgiVars + ?Sized>(
    header: ProxyHeader,
    value: &[u8],
    proxies: Option<&TrustedProxies>,
    vars: &mut V,
) {
    match header {
        ProxyHeader::XForwardedFor => {
            if let Some(fwd) = forwarded_for(value, proxies) {
                vars.set("REMOTE_ADDR", fwd.remote_addr);
                if let Some(list) = fwd.rewritten {
                    vars.set("HTTP_X_FORWARDED_FOR", list);
                }
            }
        }
        ProxyHeader::XClientIp | ProxyHeader::XRealIp => vars.set("REMOTE_ADDR", value.to_vec()),
        ProxyHeader::XForwardedHost | ProxyHeader::XHost => vars.set("HTTP_HOST", value.to_vec()),
        ProxyHeader::XForwardedServer => vars.set("SERVER_NAME", value.to_vec()),
        ProxyHeader::XForwardedPort => vars.set("SERVER_PORT", value.to_vec()),
        ProxyHeader::XScriptName | ProxyHeader::XForwardedScriptName => {
            vars.set("mod_wsgi.mount_point", value.to_vec());
            vars.set("SCRIPT_NAME", value.to_vec());
        }
        ProxyHeader::XForwardedProto | ProxyHeader::XForwardedScheme | ProxyHeader::XScheme => {
            if value.eq_ignore_ascii_case(b"https") {
                vars.set("HTTPS", b"1".to_vec());
            } else if value.eq_ignore_ascii_case(b"http") {
                vars.remove("HTTPS");
            }
        }
        ProxyHeader::XForwardedHttps | ProxyHeader::XForwardedSsl | ProxyHeader::XHttps => {
            let is = |words: &[&[u8]]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
            if is(&[b"on", b"true", b"1"]) {
                vars.set("HTTPS", b"1".to_vec());
            } else if is(&[b"off", b"false", b"0"]) {
                vars.remove("HTTPS");
            }
        }
    }
}

/// The client found in an X-Forwarded-For value.
#[derive(Debug, PartialEq, Eq)]
struct Forwarded {
    remote_addr: Vec<u8>,
    /// The new HTTP_X_FORWARDED_FOR, when it changes.
    rewritten: Option<Vec<u8>>,
}

/// The client of an X-Forwarded-For list (see the module documentation); `None` when the
/// list has no element.
fn forwarded_for(value: &[u8], proxies: Option<&TrustedProxies>) -> Option<Forwarded> {
    let items: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(trim_space)
        .filter(|item| !item.is_empty())
        .collect();
    let (&first, &last) = (items.first()?, items.last()?);
    let Some(proxies) = proxies else {
        return Some(Forwarded {
            remote_addr: first.to_vec(),
            rewritten: None,
        });
    };
    // The leftmost element of the run of trusted proxies at the right end.
    let mut leftmost_trusted = None;
    for (i, item) in items.iter().enumerate().rev() {
        match parse_ip(item) {
            Some(ip) if proxies.contains(ip) => leftmost_trusted = Some(i),
            _ => break,
        }
    }
    let client = match leftmost_trusted {
        Some(i) => i.saturating_sub(1),
        None => {
            return Some(Forwarded {
                remote_addr: last.to_vec(),
                rewritten: Some(last.to_vec()),
            });
        }
    };
    Some(Forwarded {
        remote_addr: items[client].to_vec(),
        rewritten: Some(items[client..].join(&b", "[..])),
    })
}

/// `bytes` without leading and trailing C `isspace` characters.
fn trim_space(bytes: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = bytes.iter().position(|b| !space(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- helpers ----

    fn hdrs(raw: &str) -> Vec<ProxyHeader> {
        parse_trusted_proxy_headers(raw).unwrap()
    }

    fn proxies(raw: &str) -> TrustedProxies {
        parse_trusted_proxies(raw).unwrap()
    }

    /// CGI variables of a request from `peer` to mount point /mnt on localhost:8080, plus
    /// the given request headers (as HTTP_* names).
    fn request(peer: &str, headers: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let mut vars: Vec<(String, Vec<u8>)> = vec![
            ("HTTP_HOST".into(), b"localhost:8080".to_vec()),
            ("SERVER_NAME".into(), b"localhost".to_vec()),
            ("SERVER_PORT".into(), b"8080".to_vec()),
            ("REMOTE_ADDR".into(), peer.as_bytes().to_vec()),
            ("SCRIPT_NAME".into(), b"/mnt".to_vec()),
            ("PATH_INFO".into(), b"/page".to_vec()),
        ];
        for (name, value) in headers {
            vars.push((name.to_string(), value.as_bytes().to_vec()));
        }
        vars
    }

    fn get<'a>(vars: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    /// Run the processing and return the variables and the outcome.
    fn run(
        headers: &str,
        trusted: Option<&str>,
        peer: &str,
        sent: &[(&str, &str)],
    ) -> (Vec<(String, Vec<u8>)>, ProxyOutcome) {
        let list = hdrs(headers);
        let proxies = trusted.map(proxies);
        let mut vars = request(peer, sent);
        let outcome = process_proxy_headers(&list, proxies.as_ref(), peer, &mut vars);
        (vars, outcome)
    }

    /// `wsgi.url_scheme` as the handler would compute it.
    fn scheme(vars: &[(String, Vec<u8>)], outcome: &ProxyOutcome, tls: bool) -> &'static str {
        let https = vars
            .iter()
            .find(|(k, _)| k == "HTTPS")
            .map(|(_, v)| v.as_slice());
        outcome.url_scheme(https, tls)
    }

    const ALL_BUT_SERVER: &str = "X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto X-Forwarded-SSL X-Forwarded-HTTPS X-Script-Name X-Forwarded-Script-Name";
    const WITH_SERVER: &str = "X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto X-Forwarded-SSL X-Script-Name X-Forwarded-Script-Name X-Forwarded-Server X-Forwarded-Port";
    const PEER: &str = "127.0.0.1";

    // ---- WSGITrustedProxyHeaders parsing ----

    #[test]
    fn header_names_any_case_and_separator() {
        assert_eq!(
            hdrs("x-forwarded-for X_REAL_IP X-FORWARDED-PROTO x-forwarded-ssl"),
            vec![
                ProxyHeader::XForwardedFor,
                ProxyHeader::XRealIp,
                ProxyHeader::XForwardedProto,
                ProxyHeader::XForwardedSsl
            ]
        );
        assert_eq!(hdrs("'X-Host'"), vec![ProxyHeader::XHost]);
    }

    #[test]
    fn every_header_round_trips_by_name() {
        for h in ProxyHeader::ALL {
            assert_eq!(ProxyHeader::from_name(h.name()), Some(h), "{h}");
            assert_eq!(
                ProxyHeader::from_name(&h.name().to_ascii_lowercase()),
                Some(h)
            );
            assert_eq!(
                h.cgi_name(),
                format!("HTTP_{}", h.name().to_ascii_uppercase().replace('-', "_"))
            );
        }
        assert_eq!(
            ProxyCategory::ALL
                .iter()
                .map(|c| c.headers().count())
                .sum::<usize>(),
            15
        );
    }

    #[test]
    fn header_order_is_kept() {
        assert_eq!(
            hdrs("X-Real-IP X-Forwarded-For"),
            vec![ProxyHeader::XRealIp, ProxyHeader::XForwardedFor]
        );
    }

    #[test]
    fn unknown_header_suggests_the_near_one() {
        assert_eq!(
            parse_trusted_proxy_headers("X-Forwarded-Fro").unwrap_err(),
            "WSGITrustedProxyHeaders: 'X-Forwarded-Fro' is not a proxy header mod_wsgi supports; did you mean X-Forwarded-For?"
        );
        let e = parse_trusted_proxy_headers("X-Forwarded-For HTTP_X_REAL_IP").unwrap_err();
        assert!(
            e.contains("'HTTP_X_REAL_IP'") && e.ends_with("did you mean X-Real-IP?"),
            "{e}"
        );
    }

    #[test]
    fn unknown_header_lists_the_supported_ones() {
        let e = parse_trusted_proxy_headers("Forwarded").unwrap_err();
        assert!(
            e.starts_with("WSGITrustedProxyHeaders: 'Forwarded' is not a proxy header mod_wsgi supports; use one of X-Forwarded-For, X-Client-IP, X-Real-IP, "),
            "{e}"
        );
        assert!(e.ends_with("X-HTTPS"), "{e}");
    }

    #[test]
    fn no_header_is_an_error() {
        for raw in ["", "   "] {
            assert_eq!(
                parse_trusted_proxy_headers(raw).unwrap_err(),
                "WSGITrustedProxyHeaders: no header given; write e.g. WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto"
            );
        }
        assert!(
            parse_trusted_proxy_headers("''")
                .unwrap_err()
                .contains("''")
        );
    }

    // ---- WSGITrustedProxies parsing ----

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses() {
        let p = proxies("127.0.0.1 ::1 2001:db8::7");
        assert!(p.contains(ip("127.0.0.1")));
        assert!(!p.contains(ip("127.0.0.2")));
        assert!(p.contains(ip("::1")));
        assert!(!p.contains(ip("::2")));
        assert!(p.contains(ip("2001:db8::7")));
        assert_eq!(p.ranges().len(), 3);
        assert_eq!(p.ranges()[0].to_string(), "127.0.0.1");
        assert_eq!(p.ranges()[1].to_string(), "::1");
    }

    #[test]
    fn cidr_ranges() {
        let p = proxies("10.0.0.0/8 192.168.1.0/24 2001:db8::/32 172.16.0.1/32");
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.77",
            "2001:db8:ffff::1",
            "172.16.0.1",
        ] {
            assert!(p.contains(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.0",
            "9.255.255.255",
            "192.168.2.1",
            "2001:db9::1",
            "172.16.0.2",
            "::1",
        ] {
            assert!(!p.contains(ip(no)), "{no}");
        }
        assert_eq!(p.ranges()[0].to_string(), "10.0.0.0/8");
        assert_eq!(p.ranges()[2].to_string(), "2001:db8::/32");
        assert_eq!(p.ranges()[3].to_string(), "172.16.0.1");
    }

    #[test]
    fn host_bits_are_dropped() {
        let r = IpRange::parse("10.1.2.3/16").unwrap();
        assert_eq!(r.to_string(), "10.1.0.0/16");
        assert!(r.contains(ip("10.1.200.200")));
        assert_eq!(
            IpRange::parse("2001:db8::1/64").unwrap().to_string(),
            "2001:db8::/64"
        );
    }

    #[test]
    fn dotted_netmask_and_partial_networks() {
        let r = IpRange::parse("10.1.0.0/255.255.0.0").unwrap();
        assert_eq!(r.to_string(), "10.1.0.0/16");
        assert!(r.contains(ip("10.1.9.9")) && !r.contains(ip("10.2.0.1")));
        let odd = IpRange::parse("10.0.0.0/255.0.255.0").unwrap();
        assert_eq!(odd.to_string(), "10.0.0.0/255.0.255.0");
        assert!(odd.contains(ip("10.7.0.9")) && !odd.contains(ip("10.0.7.0")));

        assert_eq!(IpRange::parse("10").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            IpRange::parse("172.20").unwrap().to_string(),
            "172.20.0.0/16"
        );
        let r = IpRange::parse("192.168.2").unwrap();
        assert_eq!(r.to_string(), "192.168.2.0/24");
        assert!(r.contains(ip("192.168.2.200")) && !r.contains(ip("192.168.3.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let p = proxies("10.0.0.0/8");
        assert!(p.contains(ip("::ffff:10.1.2.3")));
        assert!(p.contains_str("::ffff:10.1.2.3"));
        let mapped = proxies("::ffff:192.0.2.1 ::ffff:198.51.100.0/120");
        assert!(mapped.contains(ip("192.0.2.1")));
        assert!(mapped.contains(ip("198.51.100.200")));
        assert_eq!(mapped.ranges()[1].to_string(), "198.51.100.0/24");
    }

    #[test]
    fn bad_addresses_are_config_errors() {
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "10.0.0.256",
            "1.2.3.4.5",
            "10.1/16",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "10.0.0.0/abc",
            "10.0.0.0/255.255.0",
            "1.2.3.4/-8",
            "fe80::1%eth0",
            "::1/64x",
            "[::1]",
            "10.",
            "010.1",
            "1.2.3.4:80",
        ] {
            assert_eq!(
                parse_trusted_proxies(bad).unwrap_err(),
                format!(
                    "WSGITrustedProxies: '{bad}' is not an IP address or CIDR range; write e.g. WSGITrustedProxies 10.0.0.0/8 ::1"
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn exact_error_text_for_a_bad_prefix() {
        assert_eq!(
            parse_trusted_proxies("127.0.0.1 10.0.0.0/33").unwrap_err(),
            "WSGITrustedProxies: '10.0.0.0/33' is not an IP address or CIDR range; write e.g. WSGITrustedProxies 10.0.0.0/8 ::1"
        );
    }

    #[test]
    fn host_names_are_not_looked_up() {
        assert_eq!(
            parse_trusted_proxies("proxy.example.com").unwrap_err(),
            "WSGITrustedProxies: 'proxy.example.com' is not an IP address or CIDR range (host names are not looked up); write e.g. WSGITrustedProxies 10.0.0.0/8 ::1"
        );
        assert!(
            parse_trusted_proxies("localhost")
                .unwrap_err()
                .contains("host names")
        );
    }

    #[test]
    fn a_range_of_everything_is_refused() {
        for all in ["0.0.0.0/0", "::/0", "10.0.0.0/0.0.0.0"] {
            let e = parse_trusted_proxies(all).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "WSGITrustedProxies: '{all}' would trust every address; every peer is already trusted when WSGITrustedProxies is left out, so remove it or name the proxies, e.g. WSGITrustedProxies 10.0.0.0/8 ::1"
                )
            );
        }
    }

    #[test]
    fn no_address_is_an_error() {
        assert_eq!(
            parse_trusted_proxies(" ").unwrap_err(),
            "WSGITrustedProxies: no address given; write e.g. WSGITrustedProxies 10.0.0.0/8 ::1"
        );
        assert!(parse_trusted_proxies("''").unwrap_err().contains("'''"));
    }

    #[test]
    fn repeated_lines_add_up() {
        let mut p = proxies("10.0.0.1");
        p.extend(proxies("::1 192.168.0.0/16"));
        assert_eq!(p.ranges().len(), 3);
        assert!(
            p.contains(ip("192.168.5.5")) && p.contains(ip("10.0.0.1")) && p.contains(ip("::1"))
        );
        assert!("10.0.0.0/8".parse::<IpRange>().is_ok());
    }

    #[test]
    fn peer_that_is_not_an_ip_is_not_trusted() {
        let p = proxies("127.0.0.1");
        assert!(p.contains_str("127.0.0.1"));
        for s in ["", "localhost", "127.0.0.1 ", "[::1]", "127.0.0.1:80"] {
            assert!(!p.contains_str(s), "{s:?}");
        }
    }

    // ---- no WSGITrustedProxies: every peer trusted, leftmost X-Forwarded-For ----

    #[test]
    fn leftmost_forwarded_for_becomes_remote_addr() {
        let (vars, out) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_FORWARDED_FOR", "203.0.113.5, 10.0.0.1")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_FOR"),
            Some("203.0.113.5, 10.0.0.1")
        );
        assert!(out.peer_trusted);
        assert_eq!(out.applied, vec![ProxyHeader::XForwardedFor]);
    }

    #[test]
    fn leftmost_skips_empty_elements() {
        for (sent, want) in [
            (", 203.0.113.5", "203.0.113.5"),
            (", , 203.0.113.5, 198.51.100.1", "203.0.113.5"),
            ("203.0.113.5,", "203.0.113.5"),
            ("\t 203.0.113.5 \t,x", "203.0.113.5"),
            ("not-an-ip, 10.0.0.1", "not-an-ip"),
        ] {
            let (vars, _) = run(
                ALL_BUT_SERVER,
                None,
                PEER,
                &[("HTTP_X_FORWARDED_FOR", sent)],
            );
            assert_eq!(get(&vars, "REMOTE_ADDR"), Some(want), "{sent:?}");
            assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some(sent), "{sent:?}");
        }
    }

    #[test]
    fn forwarded_for_without_elements_leaves_remote_addr() {
        for sent in ["", " ", ",", " , ,, "] {
            for trusted in [None, Some("127.0.0.1")] {
                let (vars, out) = run(
                    "X-Forwarded-For",
                    trusted,
                    PEER,
                    &[("HTTP_X_FORWARDED_FOR", sent)],
                );
                assert_eq!(get(&vars, "REMOTE_ADDR"), Some(PEER), "{sent:?}");
                assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some(sent), "{sent:?}");
                assert_eq!(out.applied, vec![ProxyHeader::XForwardedFor]);
            }
        }
    }

    #[test]
    fn forwarded_host_rewrites_http_host() {
        let (vars, _) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_FORWARDED_HOST", "proxy.example.com")],
        );
        assert_eq!(get(&vars, "HTTP_HOST"), Some("proxy.example.com"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_HOST"),
            Some("proxy.example.com")
        );
    }

    #[test]
    fn forwarded_proto_sets_or_clears_https() {
        let (vars, out) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_FORWARDED_PROTO", "https")],
        );
        assert_eq!(get(&vars, "HTTPS"), Some("1"));
        assert_eq!(scheme(&vars, &out, false), "https");
        assert!(out.applied(ProxyCategory::Scheme));

        let (vars, out) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_FORWARDED_PROTO", "http")],
        );
        assert_eq!(get(&vars, "HTTPS"), None);
        assert_eq!(scheme(&vars, &out, false), "http");

        let (vars, _) = run("X-Scheme", None, PEER, &[("HTTP_X_SCHEME", "HTTPS")]);
        assert_eq!(get(&vars, "HTTPS"), Some("1"));
        let (vars, _) = run(
            "X-Forwarded-Scheme",
            None,
            PEER,
            &[("HTTP_X_FORWARDED_SCHEME", "HttpS")],
        );
        assert_eq!(get(&vars, "HTTPS"), Some("1"));
    }

    #[test]
    fn boolean_scheme_headers() {
        for (header, cgi) in [
            ("X-Forwarded-SSL", "HTTP_X_FORWARDED_SSL"),
            ("X-Forwarded-HTTPS", "HTTP_X_FORWARDED_HTTPS"),
            ("X-HTTPS", "HTTP_X_HTTPS"),
        ] {
            for on in ["On", "on", "true", "TRUE", "1"] {
                let (vars, out) = run(header, None, PEER, &[(cgi, on)]);
                assert_eq!(get(&vars, "HTTPS"), Some("1"), "{header}: {on}");
                assert_eq!(scheme(&vars, &out, false), "https");
            }
            for off in ["Off", "false", "0", "FALSE"] {
                let mut vars = request(PEER, &[(cgi, off), ("HTTPS", "on")]);
                let out = process_proxy_headers(&hdrs(header), None, PEER, &mut vars);
                assert_eq!(get(&vars, "HTTPS"), None, "{header}: {off}");
                assert_eq!(scheme(&vars, &out, false), "http");
            }
        }
    }

    #[test]
    fn other_scheme_values_change_nothing_but_still_decide() {
        // Neither "ftp" nor "yes" is understood: HTTPS keeps its value, and mod_ssl's view of
        // the connection is not consulted because the proxy sent a trusted scheme header.
        for (header, cgi, value) in [
            ("X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", "ftp"),
            ("X-Forwarded-SSL", "HTTP_X_FORWARDED_SSL", "yes"),
            ("X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", " https"),
        ] {
            let (vars, out) = run(header, None, PEER, &[(cgi, value)]);
            assert_eq!(get(&vars, "HTTPS"), None);
            assert!(out.applied(ProxyCategory::Scheme));
            assert_eq!(scheme(&vars, &out, true), "http");

            let mut vars = request(PEER, &[(cgi, value), ("HTTPS", "on")]);
            let out = process_proxy_headers(&hdrs(header), None, PEER, &mut vars);
            assert_eq!(get(&vars, "HTTPS"), Some("on"));
            assert_eq!(scheme(&vars, &out, false), "https");
        }
    }

    #[test]
    fn script_name_headers_rewrite_script_name_and_mount_point() {
        let (vars, out) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_SCRIPT_NAME", "/app")],
        );
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&vars, "mod_wsgi.mount_point"), Some("/app"));
        assert_eq!(get(&vars, "PATH_INFO"), Some("/page"));
        assert_eq!(out.applied, vec![ProxyHeader::XScriptName]);

        let (vars, _) = run(
            ALL_BUT_SERVER,
            None,
            PEER,
            &[("HTTP_X_FORWARDED_SCRIPT_NAME", "/other")],
        );
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/other"));
        assert_eq!(get(&vars, "mod_wsgi.mount_point"), Some("/other"));

        let (vars, _) = run(ALL_BUT_SERVER, None, PEER, &[]);
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/mnt"));
        assert_eq!(get(&vars, "mod_wsgi.mount_point"), None);
    }

    #[test]
    fn other_client_headers_are_dropped_when_forwarded_for_is_trusted() {
        let sent = [
            ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ("HTTP_X_CLIENT_IP", "198.51.100.9"),
            ("HTTP_X_REAL_IP", "203.0.113.9"),
        ];
        let (vars, _) = run(ALL_BUT_SERVER, None, PEER, &sent);
        assert_eq!(get(&vars, "HTTP_X_CLIENT_IP"), None);
        assert_eq!(get(&vars, "HTTP_X_REAL_IP"), None);
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some("203.0.113.5"));
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
    }

    #[test]
    fn unsent_trusted_header_still_clears_its_category() {
        // X-Forwarded-Host is trusted but not sent: a spoofed X-Host must not survive, and
        // HTTP_HOST stays as Apache set it.
        let (vars, out) = run(
            "X-Forwarded-Host",
            None,
            PEER,
            &[("HTTP_X_HOST", "evil.example")],
        );
        assert_eq!(get(&vars, "HTTP_X_HOST"), None);
        assert_eq!(get(&vars, "HTTP_HOST"), Some("localhost:8080"));
        assert!(out.applied.is_empty());
    }

    #[test]
    fn client_ip_headers_are_used_as_sent() {
        let (vars, _) = run(
            "X-Real-IP",
            None,
            PEER,
            &[
                ("HTTP_X_REAL_IP", "198.51.100.7"),
                ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("198.51.100.7"));
        assert_eq!(get(&vars, "HTTP_X_REAL_IP"), Some("198.51.100.7"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), None);

        // No list parsing and no address check for X-Client-IP, even with a trusted list.
        let (vars, _) = run(
            "X-Client-IP",
            Some("127.0.0.1"),
            PEER,
            &[("HTTP_X_CLIENT_IP", "a, b")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("a, b"));
    }

    #[test]
    fn later_listed_header_of_a_category_wins() {
        let sent = [
            ("HTTP_X_FORWARDED_HOST", "one.example"),
            ("HTTP_X_HOST", "two.example"),
        ];
        let (vars, out) = run("X-Forwarded-Host X-Host", None, PEER, &sent);
        assert_eq!(get(&vars, "HTTP_HOST"), Some("two.example"));
        assert_eq!(get(&vars, "HTTP_X_HOST"), Some("two.example"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_HOST"), None);
        assert_eq!(out.applied, vec![ProxyHeader::XHost]);

        let (vars, _) = run("X-Host X-Forwarded-Host", None, PEER, &sent);
        assert_eq!(get(&vars, "HTTP_HOST"), Some("one.example"));
        assert_eq!(get(&vars, "HTTP_X_HOST"), None);

        // Only the one that is sent applies, wherever it is listed.
        let (vars, _) = run("X-Forwarded-Host X-Host", None, PEER, &sent[..1]);
        assert_eq!(get(&vars, "HTTP_HOST"), Some("one.example"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_HOST"), Some("one.example"));
    }

    #[test]
    fn empty_values_are_applied() {
        let (vars, out) = run(
            "X-Forwarded-Host",
            None,
            PEER,
            &[("HTTP_X_FORWARDED_HOST", "")],
        );
        assert_eq!(get(&vars, "HTTP_HOST"), Some(""));
        assert_eq!(out.applied, vec![ProxyHeader::XForwardedHost]);
    }

    #[test]
    fn repeated_header_in_the_list_is_harmless() {
        let sent = [(
            "HTTP_X_FORWARDED_FOR",
            "198.51.100.1, 203.0.113.5, 127.0.0.1",
        )];
        let (once, _) = run("X-Forwarded-For", Some("127.0.0.1"), PEER, &sent);
        let (twice, _) = run(
            "X-Forwarded-For X-Forwarded-For",
            Some("127.0.0.1"),
            PEER,
            &sent,
        );
        assert_eq!(once, twice);
        assert_eq!(get(&twice, "REMOTE_ADDR"), Some("203.0.113.5"));
    }

    #[test]
    fn empty_header_list_changes_nothing() {
        let sent = [
            ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
        ];
        for trusted in [None, Some(proxies("10.9.9.9"))] {
            let mut vars = request(PEER, &sent);
            let before = vars.clone();
            let out = process_proxy_headers(&[], trusted.as_ref(), PEER, &mut vars);
            assert_eq!(vars, before);
            assert!(out.applied.is_empty());
        }
    }

    // ---- WSGITrustedProxies includes the peer: chain walk ----

    #[test]
    fn chain_walk_stops_at_the_first_untrusted_address() {
        let sent = [("HTTP_X_FORWARDED_FOR", "203.0.113.5, 127.0.0.1")];
        let (vars, out) = run(WITH_SERVER, Some("127.0.0.1 ::1"), PEER, &sent);
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_FOR"),
            Some("203.0.113.5, 127.0.0.1")
        );
        assert!(out.peer_trusted);
    }

    #[test]
    fn chain_walk_drops_what_the_client_prepended() {
        let sent = [(
            "HTTP_X_FORWARDED_FOR",
            "6.6.6.6, 203.0.113.5,10.0.0.2 ,10.0.0.1",
        )];
        let (vars, _) = run("X-Forwarded-For", Some("10.0.0.0/8"), "10.0.0.9", &sent);
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_FOR"),
            Some("203.0.113.5, 10.0.0.2, 10.0.0.1")
        );
    }

    #[test]
    fn all_trusted_chain_uses_the_leftmost() {
        let (vars, _) = run(
            WITH_SERVER,
            Some("127.0.0.1 ::1"),
            PEER,
            &[("HTTP_X_FORWARDED_FOR", "127.0.0.1, 127.0.0.1")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_FOR"),
            Some("127.0.0.1, 127.0.0.1")
        );
        let (vars, _) = run(
            "X-Forwarded-For",
            Some("::1 10.0.0.0/8"),
            "::1",
            &[("HTTP_X_FORWARDED_FOR", "::1,10.1.1.1")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("::1"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some("::1, 10.1.1.1"));
    }

    #[test]
    fn untrusted_rightmost_is_the_client() {
        let (vars, _) = run(
            WITH_SERVER,
            Some("127.0.0.1 ::1"),
            PEER,
            &[("HTTP_X_FORWARDED_FOR", "198.51.100.9, 203.0.113.5")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some("203.0.113.5"));
    }

    #[test]
    fn chain_walk_ignores_empty_elements() {
        for sent in [
            "203.0.113.5, , 127.0.0.1",
            "203.0.113.5,,127.0.0.1",
            "203.0.113.5, 127.0.0.1,",
            ", 203.0.113.5, 127.0.0.1",
            "203.0.113.5,  ,  , 127.0.0.1",
        ] {
            let (vars, _) = run(
                WITH_SERVER,
                Some("127.0.0.1 ::1"),
                PEER,
                &[("HTTP_X_FORWARDED_FOR", sent)],
            );
            assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"), "{sent:?}");
            assert_eq!(
                get(&vars, "HTTP_X_FORWARDED_FOR"),
                Some("203.0.113.5, 127.0.0.1"),
                "{sent:?}"
            );
        }
    }

    #[test]
    fn chain_walk_stops_at_something_that_is_not_an_address() {
        let (vars, _) = run(
            "X-Forwarded-For",
            Some("127.0.0.1"),
            PEER,
            &[("HTTP_X_FORWARDED_FOR", "203.0.113.5, unknown, 127.0.0.1")],
        );
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("unknown"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_FOR"),
            Some("unknown, 127.0.0.1")
        );

        let bytes = b"203.0.113.5, \xff\xfe".to_vec();
        let mut vars = request(PEER, &[]);
        vars.push(("HTTP_X_FORWARDED_FOR".into(), bytes));
        process_proxy_headers(
            &hdrs("X-Forwarded-For"),
            Some(&proxies("127.0.0.1")),
            PEER,
            &mut vars,
        );
        assert_eq!(
            vars.iter().find(|(k, _)| k == "REMOTE_ADDR").unwrap().1,
            b"\xff\xfe"
        );
    }

    #[test]
    fn chain_walk_matches_mapped_and_v6_entries() {
        let sent = [("HTTP_X_FORWARDED_FOR", "2001:db8::5, ::ffff:10.0.0.1")];
        let (vars, _) = run("X-Forwarded-For", Some("10.0.0.0/8"), "10.0.0.2", &sent);
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("2001:db8::5"));
    }

    #[test]
    fn trusted_peer_rewrites_every_category() {
        let cases = [
            ("HTTP_X_FORWARDED_HOST", "real.example.com", "HTTP_HOST"),
            ("HTTP_X_SCRIPT_NAME", "/mounted", "SCRIPT_NAME"),
            (
                "HTTP_X_FORWARDED_SERVER",
                "overridden.example.com",
                "SERVER_NAME",
            ),
            ("HTTP_X_FORWARDED_PORT", "8443", "SERVER_PORT"),
        ];
        for (header, value, target) in cases {
            let (vars, _) = run(WITH_SERVER, Some("127.0.0.1 ::1"), PEER, &[(header, value)]);
            assert_eq!(get(&vars, target), Some(value), "{header}");
            assert_eq!(get(&vars, header), Some(value), "{header}");
        }
        let (vars, out) = run(
            WITH_SERVER,
            Some("127.0.0.1 ::1"),
            PEER,
            &[("HTTP_X_FORWARDED_PROTO", "https")],
        );
        assert_eq!(scheme(&vars, &out, false), "https");
    }

    #[test]
    fn ipv6_and_mapped_peers() {
        let sent = [("HTTP_X_FORWARDED_HOST", "real.example.com")];
        let (vars, out) = run("X-Forwarded-Host", Some("127.0.0.1 ::1"), "::1", &sent);
        assert!(out.peer_trusted);
        assert_eq!(get(&vars, "HTTP_HOST"), Some("real.example.com"));
        let (_, out) = run(
            "X-Forwarded-Host",
            Some("127.0.0.0/8"),
            "::ffff:127.0.0.1",
            &sent,
        );
        assert!(out.peer_trusted);
        let (_, out) = run(
            "X-Forwarded-Host",
            Some("2001:db8::/48"),
            "2001:db8:1::1",
            &sent,
        );
        assert!(!out.peer_trusted);
    }

    // ---- WSGITrustedProxies excludes the peer: strip, never rewrite ----

    #[test]
    fn untrusted_peer_gets_its_headers_stripped() {
        let sent = [
            ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
            ("HTTP_X_FORWARDED_HOST", "spoof.example.com"),
            ("HTTP_X_SCRIPT_NAME", "/spoof"),
            ("HTTP_X_FORWARDED_SERVER", "spoof.example.com"),
            ("HTTP_X_FORWARDED_PORT", "31337"),
            ("HTTP_X_REAL_IP", "203.0.113.6"),
            ("HTTP_X_HOST", "spoof2.example.com"),
            ("HTTP_X_HTTPS", "on"),
        ];
        let (vars, out) = run(WITH_SERVER, Some("10.99.99.99"), PEER, &sent);
        assert!(!out.peer_trusted);
        assert!(out.applied.is_empty());
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(get(&vars, "HTTP_HOST"), Some("localhost:8080"));
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/mnt"));
        assert_eq!(get(&vars, "SERVER_NAME"), Some("localhost"));
        assert_eq!(get(&vars, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&vars, "HTTPS"), None);
        assert_eq!(get(&vars, "mod_wsgi.mount_point"), None);
        for (header, _) in sent {
            assert_eq!(get(&vars, header), None, "{header}");
        }
        assert_eq!(scheme(&vars, &out, false), "http");
    }

    #[test]
    fn untrusted_peer_keeps_the_connection_scheme() {
        // mod_ssl's HTTPS stays when the spoofed X-Forwarded-Proto: http is ignored.
        let mut vars = request(PEER, &[("HTTP_X_FORWARDED_PROTO", "http"), ("HTTPS", "on")]);
        let out = process_proxy_headers(
            &hdrs(WITH_SERVER),
            Some(&proxies("10.99.99.99")),
            PEER,
            &mut vars,
        );
        assert_eq!(get(&vars, "HTTPS"), Some("on"));
        assert_eq!(scheme(&vars, &out, true), "https");
    }

    #[test]
    fn unparseable_peer_is_untrusted() {
        for peer in ["", "not-an-ip", "127.0.0.1:1234"] {
            let mut vars = request(peer, &[("HTTP_X_FORWARDED_FOR", "203.0.113.5")]);
            let out = process_proxy_headers(
                &hdrs("X-Forwarded-For"),
                Some(&proxies("127.0.0.1")),
                peer,
                &mut vars,
            );
            assert!(!out.peer_trusted, "{peer:?}");
            assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), None);
            assert_eq!(get(&vars, "REMOTE_ADDR"), Some(peer));
        }
        // Without a list the peer is not examined at all.
        let mut vars = request("", &[("HTTP_X_FORWARDED_FOR", "203.0.113.5")]);
        let out = process_proxy_headers(&hdrs("X-Forwarded-For"), None, "", &mut vars);
        assert!(out.peer_trusted);
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
    }

    #[test]
    fn empty_proxy_list_trusts_nobody() {
        let mut vars = request(PEER, &[("HTTP_X_FORWARDED_FOR", "203.0.113.5")]);
        let out = process_proxy_headers(
            &hdrs("X-Forwarded-For"),
            Some(&TrustedProxies::default()),
            PEER,
            &mut vars,
        );
        assert!(!out.peer_trusted);
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), None);
    }

    // ---- only X-Forwarded-For listed: other categories untouched ----

    #[test]
    fn unlisted_categories_pass_through_unchanged() {
        let sent = [
            ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ("HTTP_X_FORWARDED_HOST", "proxy.example.com"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
            ("HTTP_X_SCRIPT_NAME", "/app"),
            ("HTTP_X_FORWARDED_PORT", "31337"),
        ];
        let (vars, out) = run("X-Forwarded-For", None, PEER, &sent);
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some("203.0.113.5"));
        assert_eq!(get(&vars, "HTTP_HOST"), Some("localhost:8080"));
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_HOST"),
            Some("proxy.example.com")
        );
        assert_eq!(get(&vars, "HTTPS"), None);
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_PROTO"), Some("https"));
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/mnt"));
        assert_eq!(get(&vars, "HTTP_X_SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&vars, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_PORT"), Some("31337"));
        assert_eq!(out.applied, vec![ProxyHeader::XForwardedFor]);
    }

    #[test]
    fn unlisted_categories_survive_an_untrusted_peer() {
        let sent = [
            ("HTTP_X_FORWARDED_FOR", "203.0.113.5"),
            ("HTTP_X_FORWARDED_HOST", "proxy.example.com"),
        ];
        let (vars, _) = run("X-Forwarded-For", Some("10.0.0.1"), PEER, &sent);
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), None);
        assert_eq!(
            get(&vars, "HTTP_X_FORWARDED_HOST"),
            Some("proxy.example.com")
        );
    }

    // ---- the scheme over a TLS connection ----

    /// A request over TLS: mod_ssl put HTTPS=on among the variables.
    fn over_tls(headers: &str, sent: (&str, &str)) -> &'static str {
        let mut vars = request(PEER, &[sent, ("HTTPS", "on")]);
        let p = proxies("127.0.0.1 ::1");
        let out = process_proxy_headers(&hdrs(headers), Some(&p), PEER, &mut vars);
        scheme(&vars, &out, true)
    }

    #[test]
    fn trusted_scheme_header_overrides_the_tls_connection() {
        assert_eq!(
            over_tls(WITH_SERVER, ("HTTP_X_FORWARDED_PROTO", "http")),
            "http"
        );
        assert_eq!(
            over_tls(WITH_SERVER, ("HTTP_X_FORWARDED_PROTO", "https")),
            "https"
        );
        assert_eq!(
            over_tls(WITH_SERVER, ("HTTP_X_FORWARDED_SSL", "Off")),
            "http"
        );
        // No scheme header sent: the connection decides.
        assert_eq!(over_tls(WITH_SERVER, ("HTTP_X_OTHER", "x")), "https");
        // Scheme headers not listed: the connection decides, X-Forwarded-Proto is ignored.
        assert_eq!(
            over_tls("X-Forwarded-For", ("HTTP_X_FORWARDED_PROTO", "http")),
            "https"
        );
    }

    #[test]
    fn url_scheme_without_proxy_headers() {
        let out = ProxyOutcome::default();
        assert_eq!(out.url_scheme(None, false), "http");
        assert_eq!(out.url_scheme(None, true), "https");
        assert_eq!(out.url_scheme(Some(b"ON"), false), "https");
        assert_eq!(out.url_scheme(Some(b"1"), false), "https");
        assert_eq!(out.url_scheme(Some(b"off"), false), "http");
    }

    // ---- the variable list ----

    #[test]
    fn vec_vars_set_replaces_every_copy() {
        let mut vars: Vec<(String, Vec<u8>)> = vec![
            ("A".into(), b"1".to_vec()),
            ("REMOTE_ADDR".into(), b"x".to_vec()),
            ("B".into(), b"2".to_vec()),
            ("REMOTE_ADDR".into(), b"y".to_vec()),
        ];
        assert_eq!(CgiVars::get(&vars, "REMOTE_ADDR"), Some(&b"x"[..]));
        vars.set("REMOTE_ADDR", b"z".to_vec());
        assert_eq!(
            vars,
            vec![
                ("A".to_string(), b"1".to_vec()),
                ("REMOTE_ADDR".to_string(), b"z".to_vec()),
                ("B".to_string(), b"2".to_vec()),
            ]
        );
        vars.set("HTTPS", b"1".to_vec());
        assert_eq!(vars.last().unwrap().0, "HTTPS");
        CgiVars::remove(&mut vars, "A");
        assert_eq!(CgiVars::get(&vars, "A"), None);
    }

    #[test]
    fn trimming_matches_c_isspace() {
        assert_eq!(trim_space(b" \t\x0b\x0c\r\n a b \n"), b"a b");
        assert_eq!(trim_space(b"   "), b"");
        assert_eq!(trim_space(b""), b"");
    }
}
