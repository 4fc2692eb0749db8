//! Literals in conditions, read as the field's type: numbers (decimal or 0x hex), booleans,
//! addresses and networks (IPv4-mapped forms matching the IPv4 addresses they map), hex bytes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::matcher::Const;
use crate::event::FieldType;

pub(super) fn expected_of(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Str => "text",
        FieldType::Int => "a number",
        FieldType::Bool => "true or false",
        FieldType::Ip | FieldType::Net => "an address or network (e.g. 10.0.0.0/8)",
    }
}

pub(super) fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    v.parse().ok()
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_net(v: &str) -> Option<IpNet> {
    let v = v.trim();
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = v.parse().ok()?;
    // A network written in IPv4-mapped form matches the IPv4 addresses it maps.
    if let IpNet::V6(n6) = net
        && let Some(v4) = n6.addr().to_ipv4_mapped()
        && n6.prefix_len() >= 96
    {
        return ipnet::Ipv4Net::new(v4, n6.prefix_len() - 96).ok().map(IpNet::V4);
    }
    Some(net.trunc())
}

pub(super) fn constant(ty: FieldType, v: &str) -> Option<Const> {
    Some(match ty {
        FieldType::Str => Const::Str(v.to_owned()),
        FieldType::Int => Const::Int(parse_int(v)?),
        FieldType::Bool => Const::Bool(parse_bool(v)?),
        FieldType::Ip | FieldType::Net => Const::Net(parse_net(v)?),
    })
}

pub(super) fn hex_bytes(v: &str) -> Option<Vec<u8>> {
    let v = v.trim();
    if !v.len().is_multiple_of(2) {
        return None;
    }
    (0..v.len()).step_by(2).map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_mapped_and_plain() {
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::ffff:169.254.169.254").unwrap().to_string(), "169.254.169.254/32");
        assert_eq!(parse_net("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("nope").is_none());
    }
}
