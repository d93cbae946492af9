//! The RET instructions of a function, where Go's "return probes" go.
//!
//! Go forbids uretprobes (see `bpf/tls/gotls.h`), so results are read at
//! each RET. A uprobe on a byte that is not the start of an instruction
//! corrupts the target, so the function is decoded linearly from its entry
//! and the whole function must decode: an undecodable byte (data in text, a
//! wrong function size) refuses the function rather than guessing.

use iced_x86::{Code, Decoder, DecoderOptions};

/// Why a function's RETs were not found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetError {
    /// The bytes do not decode as x86-64 up to the function's end.
    #[error("undecodable instruction at +{offset:#x}")]
    Undecodable {
        /// Offset in the function.
        offset: u64,
    },
    /// The last instruction runs past the function's end.
    #[error("the last instruction crosses the function's end")]
    Overrun,
    /// No RET at all (a function that never returns is not hookable here).
    #[error("no RET instruction")]
    NoReturn,
}

/// Offsets (from the function's first byte) of every near RET in `code`,
/// the complete bytes of one function.
pub fn ret_offsets(code: &[u8]) -> Result<Vec<u64>, RetError> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut rets = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        let offset = instruction.ip();
        if instruction.is_invalid() {
            // A truncated instruction at the end also decodes as invalid.
            return Err(
                if offset as usize + instruction.len() > code.len()
                    || decoder.last_error() == iced_x86::DecoderError::NoMoreBytes
                {
                    RetError::Overrun
                } else {
                    RetError::Undecodable { offset }
                },
            );
        }
        if matches!(instruction.code(), Code::Retnq | Code::Retnq_imm16) {
            rets.push(offset);
        }
    }
    if rets.is_empty() {
        return Err(RetError::NoReturn);
    }
    Ok(rets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rets_on_instruction_boundaries() {
        // mov eax, 0xc3c3c3c3 ; ret ; xor eax, eax ; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0x31, 0xc0, 0xc3];
        assert_eq!(ret_offsets(&code), Ok(vec![5, 8]));
    }

    #[test]
    fn refuses_a_cut_instruction() {
        // mov eax, imm32 cut short
        assert_eq!(ret_offsets(&[0xc3, 0xb8, 0x01]), Err(RetError::Overrun));
    }

    #[test]
    fn refuses_a_function_without_ret() {
        assert_eq!(ret_offsets(&[0x90, 0x90]), Err(RetError::NoReturn));
    }

    #[test]
    fn refuses_undecodable_bytes() {
        // 0x06 (push es) does not exist in 64-bit mode.
        assert_eq!(
            ret_offsets(&[0xc3, 0x06, 0xc3]),
            Err(RetError::Undecodable { offset: 1 })
        );
    }
}
