//! One HPACK decoder per direction: the full-context [`decoder`] while we have seen every
//! header block since the connection began, the loss-tolerant [`partial`] decoder from the
//! first moment we have not.
//!
//! Table-size semantics: SETTINGS_HEADER_TABLE_SIZE sent by endpoint X bounds
//! the table X's *decoder* uses, i.e. the headers X receives, which are the
//! headers sent by the side that receives the SETTINGS frame. So client SETTINGS
//! (request direction) bound the response-direction decoder and vice versa.
//! A setting never changes the table by itself: the encoder must announce any
//! change with a dynamic table size update inside a header block (RFC 7541
//! §4.2), which both decoders apply. The setting only caps those updates, so the
//! caller passes the largest value the receiving peer advertised over the
//! connection (at least the 4096 default) as the bound, capped for memory. When the
//! receiving peer was not seen from the start of the connection, SETTINGS may have been
//! exchanged before the capture and the bound is unknown: any size is then accepted, and the
//! memory cap only forgets entries (they become unknown, never "beyond the table").

pub(crate) mod decoder;
pub(crate) mod huffman;
pub(crate) mod partial;
pub(crate) mod static_table;

use std::fmt;

use partial::{Outcome, PartialTable};

use crate::exchange::Header;

/// Initial dynamic table size of every HTTP/2 connection (RFC 9113 §6.5.2).
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;

/// What became of one header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlockOutcome {
    /// The exact header list the sender encoded.
    Decoded(Vec<Header>),
    /// Not output, because it could not be proven; the string says why.
    Dropped(String),
}

enum State {
    InSync(decoder::Decoder),
    Lost { table: PartialTable, reason: String },
}

/// The HPACK decoder for one direction of a connection.
pub(crate) struct HeaderDecoder {
    state: State,
    bound: usize,
    /// Whether `bound` is the peer's real bound, or only a memory cap because SETTINGS may
    /// have been exchanged before the capture (see [`HeaderDecoder::with_unknown_bound`]).
    bound_known: bool,
    max_list_bytes: usize,
}

impl fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::InSync(_) => f.write_str("HeaderDecoder::InSync"),
            State::Lost { table, reason } => f
                .debug_struct("HeaderDecoder::Lost")
                .field("reason", reason)
                .field("table", table)
                .finish(),
        }
    }
}

impl HeaderDecoder {
    /// A decoder that has seen the connection from its first byte.
    ///
    /// `bound` is the largest table size the peer may switch to; it must be at
    /// least `table_size`.
    pub(crate) fn new(table_size: usize, bound: usize, max_list_bytes: usize) -> HeaderDecoder {
        let bound = bound.max(table_size);
        HeaderDecoder {
            state: State::InSync(decoder::Decoder::new(table_size, bound)),
            bound,
            bound_known: true,
            max_list_bytes,
        }
    }

    /// The same decoder for a peer whose SETTINGS were not all seen: it may have announced
    /// any table size, so the table kept without full context accepts any size update and
    /// evicts only what a size update proves gone (`bound` then caps memory only).
    pub(crate) fn with_unknown_bound(mut self) -> HeaderDecoder {
        self.bound_known = false;
        if let State::Lost { table, .. } = &mut self.state {
            *table = PartialTable::unknown_bound(self.bound);
        }
        self
    }

    /// A decoder for a direction whose earlier header blocks were not captured.
    pub(crate) fn lost(
        bound: usize,
        max_list_bytes: usize,
        reason: impl Into<String>,
    ) -> HeaderDecoder {
        let mut d = HeaderDecoder::new(DEFAULT_TABLE_SIZE, bound, max_list_bytes);
        d.lose_context(reason);
        d
    }

    /// Forgets the dynamic table: bytes that may have changed it were not seen.
    pub(crate) fn lose_context(&mut self, reason: impl Into<String>) {
        let table = if self.bound_known {
            PartialTable::unknown(self.bound)
        } else {
            PartialTable::unknown_bound(self.bound)
        };
        self.state = State::Lost {
            table,
            reason: reason.into(),
        };
    }

    /// Why the dynamic table is not fully known, if it is not.
    #[cfg(test)]
    pub(crate) fn lost_reason(&self) -> Option<&str> {
        match &self.state {
            State::Lost { table, reason } if !table.fully_known() => Some(reason),
            _ => None,
        }
    }

    /// Decodes one complete header block (all fragments joined).
    pub(crate) fn decode(&mut self, block: &[u8]) -> BlockOutcome {
        let max_list_bytes = self.max_list_bytes;
        match &mut self.state {
            State::InSync(decoder) => {
                let mut headers = Vec::new();
                let mut list_bytes = 0usize;
                let mut over = false;
                // Indexed fields cost one byte each but may name a large entry;
                // stop collecting at the cap instead of amplifying the block.
                let result = decoder.decode(block, |name, value| {
                    list_bytes = list_bytes.saturating_add(name.len() + value.len() + 32);
                    if list_bytes > max_list_bytes {
                        over = true;
                    } else {
                        headers.push(Header {
                            name: name.to_vec(),
                            value: value.to_vec(),
                        });
                    }
                });
                match result {
                    Ok(()) if over => BlockOutcome::Dropped(format!(
                        "decoded header list exceeds {max_list_bytes} bytes"
                    )),
                    Ok(()) => BlockOutcome::Decoded(headers),
                    Err(e) => {
                        let reason = format!("HPACK decoding failed ({e})");
                        self.lose_context(reason.clone());
                        BlockOutcome::Dropped(format!("header block dropped: {reason}"))
                    }
                }
            }
            State::Lost { table, reason } => match table.decode(block, max_list_bytes) {
                Outcome::Complete(headers) => BlockOutcome::Decoded(headers),
                Outcome::Unresolved(why) => {
                    BlockOutcome::Dropped(format!("header block dropped: it {why} ({reason})"))
                }
                Outcome::Malformed(why) => BlockOutcome::Dropped(format!(
                    "header block dropped: invalid HPACK without full context ({why}; {reason})"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn list(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
    }

    /// Runs an RFC 7541 Appendix C sequence through both the in-sync decoder
    /// and a fully known partial table, which must agree with the RFC.
    fn run_sequence(
        table_size: usize,
        blocks: &[(&str, Vec<Header>)],
        final_table: &[(&str, &str)],
    ) {
        let mut in_sync = HeaderDecoder::new(table_size, table_size, 1 << 20);
        let mut partial = PartialTable::empty(table_size, table_size);
        for (i, (wire, expected)) in blocks.iter().enumerate() {
            let wire = hex(wire);
            assert_eq!(
                in_sync.decode(&wire),
                BlockOutcome::Decoded(expected.clone()),
                "in-sync block {i}"
            );
            assert_eq!(
                partial.decode(&wire, 1 << 20),
                Outcome::Complete(expected.clone()),
                "partial block {i}"
            );
        }
        let expected_table: Vec<_> = final_table
            .iter()
            .map(|(n, v)| Some((n.as_bytes().to_vec(), v.as_bytes().to_vec())))
            .collect();
        assert_eq!(partial.known_entries(), expected_table);
    }

    #[test]
    fn rfc7541_c2_literal_representations() {
        // C.2.1 literal with indexing, C.2.2 without, C.2.3 never indexed, C.2.4 indexed.
        run_sequence(
            4096,
            &[
                (
                    "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
                    list(&[("custom-key", "custom-header")]),
                ),
                (
                    "040c 2f73 616d 706c 652f 7061 7468",
                    list(&[(":path", "/sample/path")]),
                ),
                (
                    "1008 7061 7373 776f 7264 0673 6563 7265 74",
                    list(&[("password", "secret")]),
                ),
                ("82", list(&[(":method", "GET")])),
            ],
            &[("custom-key", "custom-header")],
        );
    }

    fn c3_c4_expected() -> [Vec<Header>; 3] {
        [
            list(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            list(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            list(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ]
    }

    const C3_C4_TABLE: [(&str, &str); 3] = [
        ("custom-key", "custom-value"),
        ("cache-control", "no-cache"),
        (":authority", "www.example.com"),
    ];

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        let [a, b, c] = c3_c4_expected();
        run_sequence(
            4096,
            &[
                ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", a),
                ("8286 84be 5808 6e6f 2d63 6163 6865", b),
                (
                    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                    c,
                ),
            ],
            &C3_C4_TABLE,
        );
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        let [a, b, c] = c3_c4_expected();
        run_sequence(
            4096,
            &[
                ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", a),
                ("8286 84be 5886 a8eb 1064 9cbf", b),
                (
                    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                    c,
                ),
            ],
            &C3_C4_TABLE,
        );
    }

    fn c5_c6_expected() -> [Vec<Header>; 3] {
        [
            list(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ]),
            list(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ]),
            list(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                ),
            ]),
        ]
    }

    const C5_C6_TABLE: [(&str, &str); 3] = [
        (
            "set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
        ("content-encoding", "gzip"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ];

    #[test]
    fn rfc7541_c5_responses_without_huffman_and_eviction() {
        let [a, b, c] = c5_c6_expected();
        run_sequence(
            256,
            &[
                (
                    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230
                     3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65
                     7861 6d70 6c65 2e63 6f6d",
                    a,
                ),
                ("4803 3330 37c1 c0bf", b),
                (
                    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220
                     474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157
                     454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076
                     6572 7369 6f6e 3d31",
                    c,
                ),
            ],
            &C5_C6_TABLE,
        );
    }

    #[test]
    fn rfc7541_c6_responses_with_huffman_and_eviction() {
        let [a, b, c] = c5_c6_expected();
        run_sequence(
            256,
            &[
                (
                    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0
                     82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                    a,
                ),
                ("4883 640e ff c1 c0 bf", b),
                (
                    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b
                     d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27
                     0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                    c,
                ),
            ],
            &C5_C6_TABLE,
        );
    }

    #[test]
    fn failure_in_sync_switches_to_lost_and_never_guesses() {
        let mut d = HeaderDecoder::new(DEFAULT_TABLE_SIZE, DEFAULT_TABLE_SIZE, 1 << 20);
        // Insert "custom-key: custom-header" (C.2.1), then decode garbage.
        let insert = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
        assert!(matches!(d.decode(&insert), BlockOutcome::Decoded(_)));
        assert!(d.lost_reason().is_none());
        assert!(matches!(d.decode(&[0xff, 0xff]), BlockOutcome::Dropped(_)));
        assert!(d.lost_reason().is_some());
        // The entry was valid before the failure, but it is not provable now.
        assert!(matches!(d.decode(&[0xbe]), BlockOutcome::Dropped(_)));
        // Static references still decode.
        assert_eq!(
            d.decode(&[0x82, 0x87]),
            BlockOutcome::Decoded(list(&[(":method", "GET"), (":scheme", "https")]))
        );
    }

    fn encode_all(lists: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<Vec<u8>> {
        let mut enc = loona_hpack::Encoder::new();
        lists
            .iter()
            .map(|l| enc.encode(l.iter().map(|(n, v)| (&n[..], &v[..]))))
            .collect()
    }

    fn header_list() -> impl proptest::strategy::Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        use proptest::prelude::*;
        let name = prop_oneof![
            Just(b":path".to_vec()),
            Just(b"user-agent".to_vec()),
            Just(b"cookie".to_vec()),
            Just(b"x-a".to_vec()),
            Just(b"x-b".to_vec()),
            proptest::collection::vec(b'a'..=b'z', 1..12),
        ];
        let value = prop_oneof![
            Just(b"same".to_vec()),
            Just(b"other".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..300),
        ];
        proptest::collection::vec((name, value), 0..8)
    }

    #[test]
    fn literal_names_let_a_lost_decoder_recover_once_the_tail_is_evicted() {
        let mut d = HeaderDecoder::lost(4096, 1 << 20, "test");
        // Reference the unknown table first: dropped.
        assert!(matches!(d.decode(&[0xbe]), BlockOutcome::Dropped(_)));
        // Forty literal-name insertions of ~140 bytes overflow 4096 bytes.
        for i in 0..40u8 {
            let mut block = vec![0x40, 0x03, b'x', b'-', b'a' + (i % 26), 100];
            block.extend_from_slice(&[b'0' + i % 10; 100]);
            assert!(matches!(d.decode(&block), BlockOutcome::Decoded(_)));
        }
        assert!(d.lost_reason().is_none(), "every entry is known again");
        // Index 62 is the newest insertion.
        let BlockOutcome::Decoded(h) = d.decode(&[0xbe]) else {
            panic!("should decode")
        };
        assert_eq!(
            h[0].name,
            format!("x-{}", (b'a' + 39 % 26) as char).into_bytes()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        #[test]
        fn full_knowledge_partial_table_equals_in_sync(lists in proptest::collection::vec(header_list(), 1..25)) {
            let blocks = encode_all(&lists);
            let mut in_sync = HeaderDecoder::new(DEFAULT_TABLE_SIZE, DEFAULT_TABLE_SIZE, 1 << 20);
            let mut partial = PartialTable::empty(DEFAULT_TABLE_SIZE, DEFAULT_TABLE_SIZE);
            for (block, list) in blocks.iter().zip(&lists) {
                let expected: Vec<Header> = list.iter().map(|(n, v)| Header::new(n.clone(), v.clone())).collect();
                proptest::prop_assert_eq!(in_sync.decode(block), BlockOutcome::Decoded(expected.clone()));
                proptest::prop_assert_eq!(partial.decode(block, 1 << 20), Outcome::Complete(expected));
            }
        }

        #[test]
        fn a_decoder_that_joined_late_never_outputs_a_wrong_list(
            lists in proptest::collection::vec(header_list(), 1..25),
            start in 0usize..25,
        ) {
            let blocks = encode_all(&lists);
            let mut late = HeaderDecoder::lost(DEFAULT_TABLE_SIZE, 1 << 20, "joined late");
            for (block, list) in blocks.iter().zip(&lists).skip(start % blocks.len()) {
                let expected: Vec<Header> = list.iter().map(|(n, v)| Header::new(n.clone(), v.clone())).collect();
                if let BlockOutcome::Decoded(got) = late.decode(block) {
                    proptest::prop_assert_eq!(got, expected);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(blocks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 1..8)) {
            let mut sync = HeaderDecoder::new(DEFAULT_TABLE_SIZE, 1 << 16, 1 << 16);
            let mut lost = HeaderDecoder::lost(1 << 16, 1 << 16, "x");
            for b in &blocks {
                let _ = sync.decode(b);
                let _ = lost.decode(b);
            }
        }
    }
}
