//! `spliff record` of a plain NSS client (compiled here from libnss3-dev): two requests on
//! one connection, the first sent with `PR_Send` and its answer first peeked at with
//! `PR_Recv(PR_MSG_PEEK)` (as Firefox does to see whether an idle connection is alive)
//! and then read with `PR_Recv`, the second a POST written with `PR_Write` and read with
//! `PR_Read`. A peek must not be recorded as data (the stream would hold its bytes twice):
//! the replayed HAR must equal the exchange server's log, and the connection must name
//! the process, NSS, the client role and its socket.
#![cfg(target_os = "linux")]

use std::{fs, path::Path, process::Command};

use serde_json::Value;
use spliff_formats::{ConnectionRole, TlsLibrary};
use spliff_tests::{
    exchange_log::{check_trace, exchange_server, read_exchange_server_log},
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{read_trace, self_signed_cert},
    tools::TempDir,
};

/// argv: port. Exit status 0 when both answers were read in full.
const NSS_CLIENT: &str = r#"
#include <nss.h>
#include <ssl.h>
#include <prio.h>
#include <prnetdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The test trusts its own server. */
static SECStatus accept_any(void *arg, PRFileDesc *fd, PRBool checksig, PRBool server)
{
	return SECSuccess;
}

/* Reads one answer (headers and Content-Length bytes); peek: look at its first
 * byte with PR_MSG_PEEK first. recv: PR_Recv, else PR_Read. */
static int answer(PRFileDesc *fd, int peek, int recv)
{
	static char all[1 << 20];
	size_t len = 0, want = (size_t)-1;
	char c, *end, *cl;

	if (peek && PR_Recv(fd, &c, 1, PR_MSG_PEEK, PR_INTERVAL_NO_TIMEOUT) != 1)
		return 1;
	while (len < want && len < sizeof(all) - 1) {
		int n = recv ? PR_Recv(fd, all + len, sizeof(all) - 1 - len, 0, PR_INTERVAL_NO_TIMEOUT)
			     : PR_Read(fd, all + len, sizeof(all) - 1 - len);
		if (n <= 0)
			return 2;
		len += n;
		all[len] = 0;
		end = strstr(all, "\r\n\r\n");
		cl = strstr(all, "Content-Length: ");
		if (end && cl)
			want = (end - all) + 4 + strtoul(cl + 16, NULL, 10);
	}
	if (peek && all[0] != c)
		return 3;
	return len == want ? 0 : 4;
}

int main(int argc, char **argv)
{
	int port = atoi(argv[1]), n;
	size_t body = 30000, i;
	char get[200], *post = malloc(body + 300);
	PRNetAddr addr;
	PRFileDesc *fd;

	if (NSS_NoDB_Init(NULL) != SECSuccess || NSS_SetDomesticPolicy() != SECSuccess)
		return 10;
	fd = SSL_ImportFD(NULL, PR_OpenTCPSocket(PR_AF_INET));
	SSL_OptionSet(fd, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE);
	SSL_AuthCertificateHook(fd, accept_any, NULL);
	SSL_SetURL(fd, "localhost");
	PR_InitializeNetAddr(PR_IpAddrLoopback, port, &addr);
	if (PR_Connect(fd, &addr, PR_INTERVAL_NO_TIMEOUT) != PR_SUCCESS)
		return 11;
	/* Host with the port: the replayed URL is built from it. */
	n = sprintf(get, "GET /text?client=nss HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	if (PR_Send(fd, get, n, 0, PR_INTERVAL_NO_TIMEOUT) != n || answer(fd, 1, 1))
		return 12;
	n = sprintf(post, "POST /upload?client=nss HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			  "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
		    port, body);
	for (i = 0; i < body; i++)
		post[n + i] = (char)(i * 13 + 5);
	if (PR_Write(fd, post, n + (int)body) != n + (int)body || answer(fd, 0, 0))
		return 13;
	PR_Close(fd);
	NSS_Shutdown();
	return 0;
}
"#;

/// Compiles the client into `dir/nss_client`.
fn build_client(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("nss_client.c");
    let binary = dir.join("nss_client");
    fs::write(&source, NSS_CLIENT).expect("write the C source");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "nss", "nspr"])
        .output()
        .expect("run pkg-config (apt-get install pkg-config libnss3-dev)");
    assert!(
        flags.status.success(),
        "pkg-config nss nspr (apt-get install libnss3-dev)"
    );
    let flags = String::from_utf8(flags.stdout).expect("utf-8 flags");
    let out = Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .args(flags.split_whitespace())
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

#[test]
fn records_an_nss_client_exactly_and_not_its_peeks() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-nss-client");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let log = d.join("server.jsonl");
    let server = exchange_server(&cert, &key, &log);
    let client = build_client(d);
    let trace = d.join("t.pcapng");
    let out = Command::new(spliff_bin())
        .args(["record", "-i", "lo", "--lib", "nss", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(&client)
        .arg(server.port.to_string())
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record (or the client) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let expected = read_exchange_server_log(&log, server.port);
    assert_eq!(expected.len(), 2, "the server logged both requests");
    check_trace(&trace, &expected, d);

    let summary = read_trace(&trace);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    assert_eq!(summary.conns.len(), 1, "one connection");
    let conn = summary.conns.values().next().expect("the connection");
    let info = conn.info.clone().expect("connection record");
    assert_eq!(
        summary.comms.get(&info.pid).map(String::as_str),
        Some("nss_client")
    );
    assert_eq!(info.tls_library, TlsLibrary::Nss);
    assert_eq!(info.role, ConnectionRole::Client);
    assert_eq!(info.sni, b"localhost");
    let logged_port = fs::read_to_string(&log)
        .expect("server log")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line")["client_port"].as_u64())
        .next()
        .flatten();
    assert_eq!(
        info.local.map(|a| u64::from(a.port())),
        logged_port,
        "the connection's socket is the one the server saw"
    );

    // --list-libs names NSS's files and what goes on each.
    let list = Command::new(spliff_bin())
        .args(["record", "--list-libs", "--lib", "nss"])
        .output()
        .expect("run spliff record --list-libs");
    let stdout = String::from_utf8_lossy(&list.stdout);
    for needle in [
        "libnspr4.so (NSS, found by file name)",
        "libssl3.so (NSS, found by file name)",
        "each NSS libnspr4.so gets",
        "each NSS libssl3.so gets",
    ] {
        assert!(
            stdout.contains(needle),
            "--list-libs lacks `{needle}`: {stdout}"
        );
    }
}
