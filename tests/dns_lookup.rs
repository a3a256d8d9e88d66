//! Name resolution: `lookup_host` for names (`localhost`), numeric IPv4
//! and IPv6 (no pool, so no context needed), `[v6]:port`, malformed input
//! (`InvalidInput`), unknown names (`.invalid`, RFC 6761: the error names
//! the host), and `lookup_addr` for 127.0.0.1. Both modes.

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::Poll;

use common::{each_mode, poll_outside};
use ringio::net::{lookup_addr, lookup_host};

fn addrs(s: &str) -> Vec<SocketAddr> {
    s.split(' ').map(|a| a.parse().unwrap()).collect()
}

#[test]
fn localhost_resolves_to_loopback_addresses() {
    each_mode(|mode, ctx| {
        let got: Vec<SocketAddr> =
            ctx.block_on(async { lookup_host("localhost:8080").await.unwrap().collect() });
        assert!(!got.is_empty(), "[{mode}]");
        for a in &got {
            assert!(a.ip().is_loopback() && a.port() == 8080, "[{mode}] {a}");
        }
    });
}

#[test]
fn numeric_addresses_are_parsed_in_place() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for (input, want) in [
                ("127.0.0.1:80", "127.0.0.1:80"),
                ("10.1.2.3:0", "10.1.2.3:0"),
                ("[::1]:80", "[::1]:80"),
                ("[2001:db8::7]:65535", "[2001:db8::7]:65535"),
            ] {
                let got: Vec<_> = lookup_host(input).await.unwrap().collect();
                assert_eq!(got, addrs(want), "[{mode}] {input}");
            }
        });
    });
    // Without any context: no blocking pool is involved, so the future is
    // ready at its first poll.
    let mut fut = Box::pin(lookup_host("[::1]:443"));
    match poll_outside(&mut fut) {
        Poll::Ready(r) => assert_eq!(r.unwrap().collect::<Vec<_>>(), addrs("[::1]:443")),
        Poll::Pending => panic!("a numeric lookup waited"),
    }
}

#[test]
fn a_name_outside_a_context_is_an_error_not_a_panic() {
    let mut fut = Box::pin(lookup_host("localhost:1"));
    match poll_outside(&mut fut) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("outside"), "{e}"),
        Poll::Ready(Ok(_)) => panic!("resolved without a context"),
        Poll::Pending => panic!("pending without a context"),
    }
}

#[test]
fn malformed_input_is_invalid_input() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            for bad in [
                "localhost",
                "localhost:",
                "localhost:http",
                "localhost:70000",
                "127.0.0.1",
                "::1",
                "::1:80",
                "[::1]",
                "[::1",
                ":80",
                "",
            ] {
                let e = lookup_host(bad).await.err().unwrap();
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {bad:?}: {e}");
            }
            let e = lookup_host("localhost").await.err().unwrap();
            assert!(e.to_string().contains("missing port"), "[{mode}] {e}");
        });
    });
}

#[test]
fn an_unknown_name_fails_naming_the_host() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let e = lookup_host("no-such-host.invalid:80").await.err().unwrap();
            assert_ne!(e.kind(), ErrorKind::InvalidInput, "[{mode}] {e}");
            assert!(
                e.to_string().contains("no-such-host.invalid"),
                "[{mode}] the message does not name the host: {e}"
            );
        });
    });
}

#[test]
fn lookup_addr_names_the_loopback_address() {
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let names = lookup_addr(lo).await.unwrap();
            assert!(!names.is_empty(), "[{mode}]");
            // The name leads back to the address.
            let name = &names[0];
            assert!(!name.is_empty(), "[{mode}]");
            let back: Vec<_> = lookup_host(&format!("{name}:1")).await.unwrap().collect();
            assert!(
                back.contains(&SocketAddr::new(lo, 1)),
                "[{mode}] {name} -> {back:?}"
            );
        });
    });
}
