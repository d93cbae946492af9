//! A capture continued in a new output (rotation): each output is a complete trace on its own,
//! with the same capture id and the interface ids of the first.

use spliff_formats::{
    CaptureId, Connection, Entry, Interface, Packet, Record, SectionInfo, TraceReader, TraceWriter,
};

fn iface(name: &str) -> Interface {
    Interface {
        linktype: 1,
        snaplen: 256,
        name: name.into(),
        description: format!("spliff: test ({name})"),
    }
}

fn packet(interface_id: u32) -> Packet<'static> {
    Packet {
        interface_id,
        ts_wall_ns: 1_700_000_000_000_000_000,
        original_len: 60,
        data: &[0u8; 14],
        direction: None,
        comment: None,
    }
}

/// (interface names in id order, packets' interface ids, records' capture ids) of one output.
fn contents(trace: &[u8]) -> (Vec<String>, Vec<u32>, Vec<CaptureId>) {
    let (mut names, mut packets, mut captures) = (Vec::new(), Vec::new(), Vec::new());
    for entry in TraceReader::new(trace) {
        match entry.expect("no read error") {
            Entry::Interface { id, interface, .. } => {
                assert_eq!(id as usize, names.len());
                names.push(interface.name);
            }
            Entry::Packet { packet, .. } => packets.push(packet.interface_id),
            Entry::Record(r) => captures.push(r.capture_id),
            _ => {}
        }
    }
    (names, packets, captures)
}

#[test]
fn a_continued_output_repeats_the_interfaces_and_keeps_the_capture_id() {
    let id = CaptureId([9; 16]);
    let section = SectionInfo {
        hardware: "x86_64".into(),
        os: "Linux".into(),
        user_application: "spliff test".into(),
    };
    let mut w = TraceWriter::new(Vec::new(), &section, id).expect("vec");
    assert_eq!(w.add_interface(&iface("lo")).expect("idb"), 1);
    assert_eq!(w.add_interface(&iface("eth0")).expect("idb"), 2);
    w.write_packet(&packet(2)).expect("packet");
    let conn = Record::Connection(Connection {
        conn_id: 1,
        ..Connection::default()
    });
    w.write(1, &conn).expect("record");

    let first = w.continue_in(Vec::new()).expect("continue");
    assert_eq!(w.bytes_written(), {
        let mut probe = TraceWriter::new(Vec::new(), &section, id).expect("vec");
        probe.add_interface(&iface("lo")).expect("idb");
        probe.add_interface(&iface("eth0")).expect("idb");
        probe.finish().expect("finish").len() as u64
    });
    // Ids written before the continuation stay valid; new ones follow them.
    w.write_packet(&packet(2))
        .expect("packet on an old interface");
    assert_eq!(w.add_interface(&iface("veth1")).expect("idb"), 3);
    w.write_packet(&packet(3)).expect("packet");
    w.write(2, &conn).expect("record");
    let before = w.bytes_written();
    let second = w.finish().expect("finish");
    assert_eq!(
        before,
        second.len() as u64,
        "bytes_written counts buffered bytes"
    );

    let (names, packets, captures) = contents(&first);
    assert_eq!(names, ["spliff", "lo", "eth0"]);
    assert_eq!((packets, captures), (vec![2], vec![id]));
    let (names, packets, captures) = contents(&second);
    assert_eq!(names, ["spliff", "lo", "eth0", "veth1"]);
    assert_eq!((packets, captures), (vec![2, 3], vec![id]));
    assert!(matches!(
        TraceReader::new(&second).next(),
        Some(Ok(Entry::Section { info, .. })) if info == section
    ));
}
