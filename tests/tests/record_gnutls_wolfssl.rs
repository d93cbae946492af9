//! `spliff record` of clients built on GnuTLS (wget, gnutls-cli, git over https through
//! libcurl-gnutls) and wolfSSL (a client compiled here from libwolfssl-dev), against a local
//! server that logs every exchange: the replayed HAR must equal the server's log, and every
//! connection must name its process and its TLS library. Servers on both libraries
//! (gnutls-serv, a wolfSSL server compiled here) are recorded server-side and checked against
//! their curl clients. And with `--lib openssl`, wget's GnuTLS is not hooked: nothing of it
//! is recorded, and the end of the capture says so.
#![cfg(target_os = "linux")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
    process::{Command, Output},
};

use serde_json::Value;
use spliff_formats::{ConnectionRole, TlsLibrary};
use spliff_tests::{
    exchange_log::{check_trace, exchange_server, read_exchange_server_log},
    require_bpf,
    spliff::spliff_bin,
    tls_workload::{read_trace, self_signed_cert},
    tools::TempDir,
};

/// A wolfSSL client: argv port. A GET of /large and a POST of 30000 bytes to /upload, each
/// on its own connection, every response read to its Content-Length.
const WOLFSSL_CLIENT: &str = r#"
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int exchange(WOLFSSL_CTX *ctx, int port, const char *req, size_t req_len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t len = 0, want = (size_t)-1;
	char buf[16384], *all = NULL, *end, *cl;
	WOLFSSL *ssl;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 1;
	ssl = wolfSSL_new(ctx);
	wolfSSL_set_fd(ssl, fd);
	if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS)
		return 2;
	if (wolfSSL_write(ssl, req, (int)req_len) != (int)req_len)
		return 3;
	while (len < want) {
		int n = wolfSSL_read(ssl, buf, sizeof(buf));
		if (n <= 0)
			break;
		all = realloc(all, len + n + 1);
		memcpy(all + len, buf, n);
		len += n;
		all[len] = 0;
		end = strstr(all, "\r\n\r\n");
		cl = strstr(all, "Content-Length: ");
		if (end && cl)
			want = (end - all) + 4 + strtoul(cl + 16, NULL, 10);
	}
	wolfSSL_shutdown(ssl);
	wolfSSL_free(ssl);
	close(fd);
	free(all);
	return len == want ? 0 : 4;
}

int main(int argc, char **argv)
{
	size_t body = 30000, i;
	char get[200], *post = malloc(body + 200);
	int port = argc > 1 ? atoi(argv[1]) : 0, n;
	WOLFSSL_CTX *ctx;

	wolfSSL_Init();
	ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	/* Host with the port: the replayed URL is built from it. */
	n = sprintf(get, "GET /large?client=wolfssl HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
	if (exchange(ctx, port, get, n))
		return 10;
	n = sprintf(post, "POST /upload?client=wolfssl HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			  "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
		    port, body);
	for (i = 0; i < body; i++)
		post[n + i] = (char)(i * 7 + 1);
	if (exchange(ctx, port, post, n + body))
		return 11;
	wolfSSL_CTX_free(ctx);
	wolfSSL_Cleanup();
	return 0;
}
"#;

/// Compiles C `source` against libwolfssl into `dir/name`.
fn build_wolfssl_program(dir: &Path, name: &str, source: &str) -> std::path::PathBuf {
    let source_path = dir.join(format!("{name}.c"));
    let binary = dir.join(name);
    fs::write(&source_path, source).expect("write the C source");
    let out = Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source_path)
        .arg("-lwolfssl")
        .output()
        .expect("run cc (apt-get install gcc libwolfssl-dev)");
    assert!(
        out.status.success(),
        "cc failed (apt-get install libwolfssl-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// A bare repository with one commit on `main`, under `root/repo.git`.
fn git_repository(root: &Path, work: &Path) {
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=spliff", "-c", "user.email=spliff@test"])
            .args(args)
            .output()
            .expect("run git (apt-get install git)");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    fs::create_dir_all(root).expect("git root");
    fs::create_dir_all(work).expect("git work tree");
    git(root, &["init", "-q", "--bare", "repo.git"]);
    git(work, &["init", "-q"]);
    git(work, &["commit", "-q", "--allow-empty", "-m", "one"]);
    let bare = root.join("repo.git");
    git(
        work,
        &[
            "push",
            "-q",
            bare.to_str().expect("utf-8"),
            "HEAD:refs/heads/main",
        ],
    );
}

/// `spliff record -i lo -o trace [extra] -- sh script`.
fn record(trace: &Path, extra: &[&str], script: &Path) -> Output {
    let out = Command::new(spliff_bin())
        // Packets of lo only: never hook the machine's real interfaces.
        .args(["record", "-i", "lo", "-o"])
        .arg(trace)
        .args(extra)
        .args(["--", "sh"])
        .arg(script)
        .output()
        .expect("run spliff record");
    assert!(
        out.status.success(),
        "spliff record failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Client port -> which client made the request, from the server's log (the `client=`
/// query, or `git` for the smart-HTTP requests).
fn clients_by_port(log: &Path) -> BTreeMap<u16, String> {
    let mut clients = BTreeMap::new();
    for line in fs::read_to_string(log).expect("server log").lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        let target = v["target"].as_str().unwrap_or_default();
        let client = match target.split_once("client=") {
            Some((_, c)) => c.to_string(),
            None if target.starts_with("/git/") => "git".to_string(),
            None => panic!("a request from an unknown client: {target}"),
        };
        let port = v["client_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok());
        let previous = clients.insert(port.expect("client_port"), client.clone());
        assert!(previous.is_none_or(|p| p == client), "port reused: {line}");
    }
    clients
}

#[test]
fn records_wget_gnutls_cli_git_and_a_wolfssl_client_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-gnutls-wolfssl");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let git_root = d.join("git");
    git_repository(&git_root, &d.join("work"));
    let log = d.join("server.jsonl");
    let server = Command::new(spliff_tests::tls_workload::PYTHON)
        .arg(spliff_tests::exchange_log::support("exchange_server.py"))
        .args([&cert, &key, &log, &git_root])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the exchange server");
    let server = server_port(server);
    let wolf = build_wolfssl_program(d, "wolf_client", WOLFSSL_CLIENT);
    let post: Vec<u8> = (0..50_000u32).map(|i| (i * 11 + 3) as u8).collect();
    fs::write(d.join("post.bin"), &post).expect("write the POST body");
    let base = format!("https://127.0.0.1:{}", server.port);
    fs::write(
        d.join("request.txt"),
        format!(
            "GET /text?client=gnutls-cli HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            server.port
        ),
    )
    .expect("write the request");
    let script = d.join("workload.sh");
    fs::write(
        &script,
        format!(
            "set -e\n\
             W='wget -q -O /dev/null --no-check-certificate'\n\
             $W {base}/large?client=wget\n\
             $W --post-file={post} {base}/upload?client=wget\n\
             # gnutls-cli ends the connection (gnutls_bye) when its stdin ends: after the answer.\n\
             (cat {request}; sleep 2) | gnutls-cli --insecure --alpn=http/1.1 --port {port} 127.0.0.1 >/dev/null\n\
             GIT_SSL_NO_VERIFY=1 git ls-remote {base}/git/repo.git >/dev/null\n\
             {wolf} {port}\n",
            post = d.join("post.bin").display(),
            request = d.join("request.txt").display(),
            port = server.port,
            wolf = wolf.display(),
        ),
    )
    .expect("write the workload");
    let trace = d.join("t.pcapng");
    record(&trace, &[], &script);

    let expected = read_exchange_server_log(&log, server.port);
    // wget 2, gnutls-cli 1, git 2 (protocol v2: info/refs, then ls-refs), wolfSSL 2.
    assert_eq!(
        expected.len(),
        7,
        "the server did not log every request: {expected:#?}"
    );
    check_trace(&trace, &expected, d);

    let clients = clients_by_port(&log);
    let summary = read_trace(&trace);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    let mut seen = BTreeSet::new();
    for (conn_id, conn) in &summary.conns {
        let info = conn.info.clone().expect("connection record");
        let comm = summary.comms.get(&info.pid).cloned().unwrap_or_default();
        let port = info.local.map(|a| a.port()).unwrap_or_default();
        let client = clients
            .get(&port)
            .unwrap_or_else(|| panic!("conn {conn_id} ({comm}): port {port} not in the log"));
        let (want_comm, want_library) = match client.as_str() {
            "wget" => ("wget", TlsLibrary::GnuTls),
            "gnutls-cli" => ("gnutls-cli", TlsLibrary::GnuTls),
            // git's https helper, as the kernel truncates its comm.
            "git" => ("git-remote-http", TlsLibrary::GnuTls),
            "wolfssl" => ("wolf_client", TlsLibrary::WolfSsl),
            other => panic!("unknown client {other}"),
        };
        assert_eq!(comm, want_comm, "conn {conn_id}: process");
        assert_eq!(
            info.tls_library, want_library,
            "conn {conn_id} ({comm}): library"
        );
        assert_eq!(
            info.role,
            ConnectionRole::Client,
            "conn {conn_id} ({comm}): role"
        );
        if client == "gnutls-cli" || client == "git" {
            assert_eq!(info.alpn, b"http/1.1", "conn {conn_id} ({comm}): ALPN");
        }
        seen.insert(client.clone());
    }
    assert_eq!(
        seen,
        ["wget", "gnutls-cli", "git", "wolfssl"]
            .map(String::from)
            .into(),
        "every client's connections are in the trace"
    );
}

#[test]
fn a_library_left_out_by_lib_records_nothing_of_its_clients() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-lib-openssl");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let log = d.join("server.jsonl");
    let server = exchange_server(&cert, &key, &log);
    let script = d.join("workload.sh");
    fs::write(
        &script,
        format!(
            "wget -q -O /dev/null --no-check-certificate https://127.0.0.1:{}/text?client=wget\n",
            server.port
        ),
    )
    .expect("write the workload");
    let trace = d.join("t.pcapng");
    let out = record(&trace, &["--lib", "openssl"], &script);
    assert_eq!(
        read_exchange_server_log(&log, server.port).len(),
        1,
        "wget ran"
    );
    let summary = read_trace(&trace);
    assert!(
        summary.conns.is_empty(),
        "GnuTLS is not hooked, yet connections were recorded: {:?}",
        summary.conns.keys()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wget") && stderr.contains("libgnutls.so"),
        "the summary names wget and its unhooked library: {stderr}"
    );

    // --list-libs with a scope says the same of a running process, before any capture.
    let mut client = Command::new("gnutls-cli")
        .args([
            "--insecure",
            "--port",
            &server.port.to_string(),
            "127.0.0.1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start gnutls-cli (apt-get install gnutls-bin)");
    let pid = client.id().to_string();
    // Until the dynamic loader has mapped it, there is nothing to list.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("libgnutls")) {
        assert!(
            std::time::Instant::now() < deadline,
            "gnutls-cli never mapped libgnutls"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let list = Command::new(spliff_bin())
        .args(["record", "--list-libs", "--lib", "openssl", "--pid", &pid])
        .output()
        .expect("run spliff record --list-libs");
    client.kill().ok();
    client.wait().ok();
    let stdout = String::from_utf8_lossy(&list.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("pid {pid} ")))
        .unwrap_or_else(|| panic!("--list-libs names pid {pid}: {stdout}"));
    assert!(
        line.contains("libgnutls.so") && line.contains("GnuTLS, not hooked"),
        "{line}"
    );
}

/// A wolfSSL server: argv cert key port connections. Answers one request per connection.
const WOLFSSL_SERVER: &str = r#"
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1, left = atoi(argv[4]);
	static const char body[] = "hello from a wolfSSL server\n";
	WOLFSSL_CTX *ctx;

	wolfSSL_Init();
	ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	if (wolfSSL_CTX_use_certificate_file(ctx, argv[1], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(ctx, argv[2], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		return 1;
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 8))
		return 2;
	while (left-- > 0) {
		int fd = accept(ls, NULL, NULL), n;
		char req[16384], resp[256];
		WOLFSSL *ssl = wolfSSL_new(ctx);

		wolfSSL_set_fd(ssl, fd);
		if (wolfSSL_accept(ssl) == WOLFSSL_SUCCESS &&
		    (n = wolfSSL_read(ssl, req, sizeof(req) - 1)) > 0) {
			n = sprintf(resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
				    sizeof(body) - 1, body);
			wolfSSL_write(ssl, resp, n);
		}
		wolfSSL_shutdown(ssl);
		wolfSSL_free(ssl);
		close(fd);
	}
	return 0;
}
"#;

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Records `server` (a shell command line, started in the background, listening on `port`)
/// answering two curl requests, and checks it server-side: every connection of `comm` is
/// `library`'s, a server, and its streams equal those of the curl (OpenSSL) connection at
/// the other end.
fn check_server_side(d: &Path, server: &str, port: u16, comm: &str, library: TlsLibrary) {
    let script = d.join("workload.sh");
    let base = format!("https://127.0.0.1:{port}");
    fs::write(
        &script,
        format!(
            "{server} >/dev/null 2>&1 &\n\
             S=$!\n\
             C='curl -sk --http1.1 -o /dev/null'\n\
             $C --retry 100 --retry-connrefused --retry-delay 0 {base}/first\n\
             $C {base}/second\n\
             kill $S 2>/dev/null\n\
             wait\n",
        ),
    )
    .expect("write the workload");
    let trace = d.join("t.pcapng");
    record(&trace, &[], &script);

    let summary = read_trace(&trace);
    assert!(summary.losses.is_empty(), "loss: {:?}", summary.losses);
    let by_tuple: BTreeMap<_, _> = summary
        .conns
        .values()
        .filter_map(|c| {
            let info = c.info.as_ref()?;
            Some(((info.local?, info.remote?), (info, c)))
        })
        .collect();
    let mut servers = 0;
    for ((local, remote), (info, conn)) in &by_tuple {
        if summary.comms.get(&info.pid).map(String::as_str) != Some(comm) {
            continue;
        }
        servers += 1;
        assert_eq!(info.tls_library, library);
        assert_eq!(info.role, ConnectionRole::Server);
        let (client, client_conn) = by_tuple
            .get(&(*remote, *local))
            .unwrap_or_else(|| panic!("no client side for the server's {local} <- {remote}"));
        assert_eq!(
            summary.comms.get(&client.pid).map(String::as_str),
            Some("curl")
        );
        assert_eq!(client.tls_library, TlsLibrary::OpenSsl);
        assert!(!conn.ingress.is_empty() && !conn.egress.is_empty());
        assert!(
            conn.ingress == client_conn.egress,
            "what the server read, the client wrote"
        );
        assert!(
            conn.egress == client_conn.ingress,
            "what the server wrote, the client read"
        );
    }
    assert_eq!(servers, 2, "both connections recorded server-side");
}

#[test]
fn records_a_gnutls_server_and_its_openssl_clients_alike() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-gnutls-serv");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let port = free_port();
    let server = format!(
        "gnutls-serv --http -p {port} --x509certfile {} --x509keyfile {}",
        cert.display(),
        key.display()
    );
    check_server_side(d, &server, port, "gnutls-serv", TlsLibrary::GnuTls);
}

#[test]
fn records_a_wolfssl_server_and_its_openssl_clients_alike() {
    if !require_bpf() {
        return;
    }
    let dir = TempDir::new("record-wolfssl-server");
    let d = dir.path();
    let (cert, key) = self_signed_cert(d);
    let binary = build_wolfssl_program(d, "wolf_server", WOLFSSL_SERVER);
    let port = free_port();
    let server = format!(
        "{} {} {} {port} 2",
        binary.display(),
        cert.display(),
        key.display()
    );
    check_server_side(d, &server, port, "wolf_server", TlsLibrary::WolfSsl);
}

/// Reads the port the exchange server prints.
fn server_port(mut child: std::process::Child) -> spliff_tests::tls_workload::Server {
    use std::io::BufRead as _;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the server's port");
    let port = line.trim().parse().expect("the server prints its port");
    spliff_tests::tls_workload::Server::from_child(child, port)
}
