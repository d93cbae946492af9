//! The `--format records` view shows the network side of a capture (format 1.1): packet
//! counters on connections, interface events and the correlation report.

use spliff_formats::{
    CaptureId, Connection, ConnectionCounters, Correlation, HookKind, InterfaceEvent,
    InterfaceEventKind, Record, SectionInfo, TraceWriter,
};
use spliff_replay::text::write_records;

fn view(records: &[Record<'_>]) -> String {
    let mut w = TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([3; 16]))
        .expect("vec writer");
    for (i, r) in records.iter().enumerate() {
        w.write(i as u64 + 1, r).expect("write");
    }
    let trace = w.finish().expect("finish");
    let mut out = Vec::new();
    write_records(&trace, &mut out).expect("vec output");
    String::from_utf8(out).expect("utf-8 view")
}

#[test]
fn counters_interfaces_and_correlation_are_shown() {
    let text = view(&[
        Record::Connection(Connection {
            conn_id: 1,
            counters: ConnectionCounters {
                packets_egress: 4,
                packets_ingress: 5,
                bytes_egress: 600,
                bytes_ingress: 7000,
            },
            ..Connection::default()
        }),
        Record::Connection(Connection {
            conn_id: 2,
            ..Connection::default()
        }),
        Record::Interface(InterfaceEvent {
            if_index: 9,
            interface_id: Some(1),
            event: InterfaceEventKind::Attached,
            hook: HookKind::XdpGeneric,
            name: b"veth0",
            detail: b"",
        }),
        Record::Correlation(Correlation {
            tls_connections: 2,
            with_socket: 1,
            with_packets: 1,
            reasons: vec![b"1 connection: no socket behind the SSL (memory BIO)"],
        }),
    ]);
    let lines: Vec<&str> = text.lines().collect();
    let conn1 = lines
        .iter()
        .find(|l| l.contains("connection conn=1 "))
        .expect("conn 1");
    assert!(conn1.ends_with(" packets=4/5 bytes=600/7000"), "{conn1}");
    let conn2 = lines
        .iter()
        .find(|l| l.contains("connection conn=2 "))
        .expect("conn 2");
    assert!(
        !conn2.contains("packets="),
        "no counters, no column: {conn2}"
    );
    assert!(
        text.contains("interface if_index=9 idb=1 attached hook=xdp-generic name=veth0"),
        "{text}"
    );
    assert!(
        text.contains("correlation tls_connections=2 with_socket=1 with_packets=1\n  1 connection: no socket behind the SSL (memory BIO)\n"),
        "{text}"
    );
}
