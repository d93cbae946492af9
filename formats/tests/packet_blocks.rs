//! Enhanced Packet Blocks: the writer builds them by hand (for speed); these tests hold its
//! bytes to pcap-file's own encoder and read them back through pcap-file's parser.

use std::borrow::Cow;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::opt_common::CommonOption;
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use proptest::prelude::*;
use spliff_formats::{CaptureId, Interface, Packet, PacketDirection, SectionInfo, TraceWriter};

/// A trace with one packet interface (id 1) and the given packets.
fn ours(packets: &[Packet<'_>]) -> Vec<u8> {
    let mut w =
        TraceWriter::new(Vec::new(), &SectionInfo::default(), CaptureId([3; 16])).expect("vec");
    let id = w
        .add_interface(&Interface {
            linktype: 1,
            snaplen: 256,
            name: "veth0".into(),
            description: String::new(),
        })
        .expect("interface");
    assert_eq!(id, 1);
    for p in packets {
        w.write_packet(p).expect("packet");
    }
    w.finish().expect("finish")
}

/// The same packets encoded by pcap-file behind the same SHB and IDBs.
fn theirs(trace: &[u8], packets: &[Packet<'_>]) -> Vec<u8> {
    let mut reader = PcapNgReader::new(trace).expect("our SHB");
    let mut w =
        PcapNgWriter::with_section_header(Vec::new(), reader.section().clone().into_owned())
            .expect("shb");
    while let Some(block) = reader.next_block() {
        match block.expect("block").0 {
            Block::InterfaceDescription(idb) => {
                w.write_pcapng_block(idb.into_owned()).expect("idb");
            }
            Block::EnhancedPacket(_) => break,
            _ => {}
        }
    }
    for p in packets {
        let mut options = Vec::new();
        if let Some(dir) = p.direction {
            options.push(EnhancedPacketOption::Flags(match dir {
                PacketDirection::Inbound => 1,
                PacketDirection::Outbound => 2,
            }));
        }
        if let Some(c) = &p.comment {
            options.push(EnhancedPacketOption::Common(CommonOption::Comment(
                Cow::Borrowed(c),
            )));
        }
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: p.interface_id,
            timestamp: Duration::from_nanos(p.ts_wall_ns),
            original_len: p.original_len.max(p.data.len() as u32),
            data: Cow::Borrowed(p.data),
            options,
        })
        .expect("epb");
    }
    w.into_inner()
}

fn check(packets: &[Packet<'_>]) {
    let mine = ours(packets);
    let reference = theirs(&mine, packets);
    assert_eq!(
        mine, reference,
        "trace bytes differ from pcap-file's encoding"
    );
    // And pcap-file reads them back as written.
    let mut reader = PcapNgReader::new(&mine[..]).expect("shb");
    let mut seen = 0;
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(epb) = block.expect("block").0 {
            let p = &packets[seen];
            assert_eq!(epb.interface_id, p.interface_id);
            assert_eq!(epb.timestamp, Duration::from_nanos(p.ts_wall_ns));
            assert_eq!(&epb.data[..], p.data);
            assert_eq!(epb.original_len, p.original_len.max(p.data.len() as u32));
            seen += 1;
        }
    }
    assert_eq!(seen, packets.len());
}

#[test]
fn epbs_with_and_without_options_match_pcap_file() {
    let data: Vec<u8> = (0..=255).collect();
    check(&[
        Packet {
            interface_id: 1,
            ts_wall_ns: 1_700_000_000_123_456_789,
            original_len: 1514,
            data: &data[..54],
            direction: Some(PacketDirection::Outbound),
            comment: Some("pid=42 comm=curl conn=1".into()),
        },
        Packet {
            interface_id: 1,
            ts_wall_ns: 5,
            original_len: 0,
            data: &data[..3],
            direction: None,
            comment: None,
        },
        Packet {
            interface_id: 0,
            ts_wall_ns: u64::MAX,
            original_len: 70_000,
            data: &data,
            direction: Some(PacketDirection::Inbound),
            comment: Some("é".into()),
        },
    ]);
}

#[test]
fn an_overlong_comment_is_cut_at_a_character_boundary() {
    let comment = "é".repeat(40_000); // 80,000 bytes
    let trace = ours(&[Packet {
        interface_id: 1,
        ts_wall_ns: 1,
        original_len: 1,
        data: b"x",
        direction: None,
        comment: Some(comment.into()),
    }]);
    let mut reader = PcapNgReader::new(&trace[..]).expect("shb");
    let mut found = None;
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(epb) = block.expect("block").0 {
            for o in epb.options {
                if let EnhancedPacketOption::Common(CommonOption::Comment(c)) = o {
                    found = Some(c.into_owned());
                }
            }
        }
    }
    let found = found.expect("comment kept");
    assert_eq!(found.len(), 65_534, "longest whole-character prefix");
    assert!(found.chars().all(|c| c == 'é'));
}

proptest! {
    #[test]
    fn any_packet_matches_pcap_file(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        ts in any::<u64>(),
        original_len in any::<u32>(),
        direction in proptest::option::of(prop_oneof![
            Just(PacketDirection::Inbound),
            Just(PacketDirection::Outbound),
        ]),
        comment in proptest::option::of(".{0,40}"),
    ) {
        check(&[Packet {
            interface_id: 1,
            ts_wall_ns: ts,
            original_len,
            data: &data,
            direction,
            comment: comment.map(Cow::Owned),
        }]);
    }
}
