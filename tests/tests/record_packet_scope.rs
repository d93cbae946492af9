//! Scoped packet capture: with a scope, `spliff record` keeps only the packets of the
//! selected processes' TCP connections (decided in the kernel); `--all-packets` keeps
//! every packet. Two curls talk to one server in a namespace of their own while two
//! recorders run: the scoped trace holds the selected curl's connection, both ways, and
//! nothing of the other curl, which the unscoped trace shows was there.
#![cfg(target_os = "linux")]

use std::path::Path;

use spliff_tests::{
    netns::{BackgroundRecorder, Netns, TlsServer},
    require_bpf,
    spliff::spliff_bin,
    tls_workload::self_signed_cert,
    tools::{TempDir, run},
};

const PORT: u16 = 4433;
/// The selected client: a copy of curl under a name of its own (its comm).
const SELECTED: &str = "scoped-curl";

/// (source port, destination port, comment) of every TCP packet, as tshark shows them.
fn tcp_packets(trace: &Path) -> Vec<(u16, u16, String)> {
    let out = run(
        "tshark",
        &[
            "-r",
            trace.to_str().unwrap(),
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "frame.comment",
        ],
    );
    out.stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('|').collect();
            let port = |i: usize| {
                fields[i]
                    .parse::<u16>()
                    .unwrap_or_else(|_| panic!("{line}"))
            };
            (port(0), port(1), fields.get(2).unwrap_or(&"").to_string())
        })
        .collect()
}

/// The client ports of the connections to the server among `packets`.
fn client_ports(packets: &[(u16, u16, String)]) -> std::collections::BTreeSet<u16> {
    packets
        .iter()
        .map(|(src, dst, _)| if *dst == PORT { *src } else { *dst })
        .collect()
}

fn curl(ns: &Netns, program: &str) {
    let url = format!("https://127.0.0.1:{PORT}/");
    let out = ns.run(program, &["-sk", "-o", "/dev/null", &url]);
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_scope_keeps_only_the_selected_processes_packets() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("packet-scope");
    let (cert, key) = self_signed_cert(dir.path());
    let ns = Netns::new("pscope");
    let _server = TlsServer::start(&ns, "127.0.0.1", PORT, &cert, &key);
    let selected = dir.path().join(SELECTED);
    std::fs::copy("/usr/bin/curl", &selected).expect("copy curl");
    let scoped_trace = dir.path().join("scoped.pcapng");
    let all_trace = dir.path().join("all.pcapng");
    let spliff = spliff_bin();
    let scoped = BackgroundRecorder::start(
        &ns,
        &spliff,
        &[
            "-i",
            "lo",
            "-o",
            scoped_trace.to_str().unwrap(),
            "--comm",
            SELECTED,
        ],
    );
    // Selects nobody for TLS, keeps every packet: shows what the scope left out.
    let all = BackgroundRecorder::start(
        &ns,
        &spliff,
        &[
            "-i",
            "lo",
            "--all-packets",
            "-o",
            all_trace.to_str().unwrap(),
            "--comm",
            "nobody-selected",
        ],
    );
    curl(&ns, "curl");
    curl(&ns, selected.to_str().unwrap());
    curl(&ns, "curl");
    let stderr = scoped.stop();
    assert!(
        stderr.contains("only the TCP connections of the selected processes"),
        "{stderr}"
    );
    all.stop();

    let kept = tcp_packets(&scoped_trace);
    assert!(kept.len() > 5, "too few packets kept: {kept:?}");
    // One connection, the selected curl's, in both directions, each packet naming it.
    let ports = client_ports(&kept);
    assert_eq!(ports.len(), 1, "connections in the scoped trace: {kept:?}");
    let port = *ports.first().unwrap();
    assert!(kept.iter().any(|(src, _, _)| *src == PORT), "{kept:?}");
    assert!(kept.iter().any(|(_, dst, _)| *dst == PORT), "{kept:?}");
    for (src, dst, comment) in &kept {
        assert!(
            comment.contains(&format!("comm={SELECTED}")),
            "{src} -> {dst}: {comment:?}"
        );
    }

    // The unscoped capture saw the other two connections at the same time.
    let everything = tcp_packets(&all_trace);
    let all_ports = client_ports(&everything);
    assert_eq!(
        all_ports.len(),
        3,
        "connections without a scope: {all_ports:?}"
    );
    assert!(all_ports.contains(&port), "{all_ports:?} lacks {port}");
    assert!(
        everything.len() > kept.len(),
        "{} packets without a scope, {} with",
        everything.len(),
        kept.len()
    );
}
