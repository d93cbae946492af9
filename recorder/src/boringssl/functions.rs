//! What one function of a stripped program does, as far as the BoringSSL
//! search needs it: which `OPENSSL_PUT_ERROR` calls it makes from
//! `ssl_lib.cc` (the reason codes it reports) and which functions it calls
//! directly. Found by decoding it from its first instruction, so every
//! error site counted is on an instruction boundary of that function.

use std::collections::BTreeSet;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Functions longer than this are not decoded to their end (BoringSSL's
/// `ssl_lib.cc` functions are a few hundred bytes; callers inline more).
pub const MAX_FUNCTION_BYTES: u64 = 16 << 10;

/// `ERR_LIB_SSL`: the library argument of every `OPENSSL_PUT_ERROR(SSL, …)`.
const ERR_LIB_SSL: u64 = 16;

/// Instructions looked at after an error site's file-name load for the
/// library and reason arguments.
const ARGUMENT_WINDOW: usize = 6;

/// One decoded function.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Function {
    /// Address of its first instruction.
    pub start: u64,
    /// Bytes decoded from `start`: up to the next function or
    /// [`MAX_FUNCTION_BYTES`] (kept so that a cached identification decodes
    /// exactly what the search decoded).
    pub len: u64,
    /// Reason codes of its `ssl_lib.cc` error sites; `None` for a site
    /// whose arguments were not recognised.
    pub reasons: BTreeSet<Option<u32>>,
    /// Targets of its direct calls.
    pub calls: BTreeSet<u64>,
}

impl Function {
    /// The known reasons of its error sites.
    pub fn known_reasons(&self) -> BTreeSet<u32> {
        self.reasons.iter().flatten().copied().collect()
    }
}

/// Decodes the function whose code starts `code` (at `start`) up to the
/// padding after it (`int3`) or an undecodable byte; `file_names` are the
/// addresses of the `ssl_lib.cc` path strings.
pub fn decode(start: u64, code: &[u8], file_names: &[u64]) -> Function {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let instructions: Vec<Instruction> =
        std::iter::from_fn(|| decoder.can_decode().then(|| decoder.decode()))
            .take_while(|i| !i.is_invalid() && i.code() != Code::Int3)
            .collect();
    let mut function = Function {
        start,
        len: code.len() as u64,
        ..Function::default()
    };
    for (at, instruction) in instructions.iter().enumerate() {
        if is_near_call(instruction) {
            function.calls.insert(instruction.near_branch_target());
        }
        if instruction.code() == Code::Lea_r64_m
            && instruction.is_ip_rel_memory_operand()
            && file_names.contains(&instruction.ip_rel_memory_address())
        {
            let following = instructions.get(at + 1..).unwrap_or_default();
            function.reasons.insert(error_reason(following));
        }
    }
    function
}

fn is_near_call(instruction: &Instruction) -> bool {
    instruction.code() == Code::Call_rel32_64 && instruction.op0_kind() == OpKind::NearBranch64
}

/// The reason argument of an `ERR_put_error(ERR_LIB_SSL, 0, reason, file,
/// line)` call whose file argument was just loaded: `mov edi, 16` and
/// `mov edx, reason` before the next call or jump.
fn error_reason(following: &[Instruction]) -> Option<u32> {
    let mut library = None;
    let mut reason = None;
    for instruction in following.iter().take(ARGUMENT_WINDOW) {
        if matches!(instruction.mnemonic(), Mnemonic::Call | Mnemonic::Jmp) {
            break;
        }
        if let Some((register, value)) = immediate_to_register(instruction) {
            match register {
                Register::EDI => library = Some(value),
                Register::EDX => reason = Some(value),
                _ => {}
            }
        }
    }
    (library == Some(ERR_LIB_SSL))
        .then_some(reason)
        .flatten()
        .and_then(|r| u32::try_from(r).ok())
}

fn immediate_to_register(instruction: &Instruction) -> Option<(Register, u64)> {
    (instruction.code() == Code::Mov_r32_imm32 && instruction.op1_kind() == OpKind::Immediate32)
        .then(|| {
            (
                instruction.op0_register(),
                u64::from(instruction.immediate32()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lea rcx, [rip+disp]; mov edi, 16; xor esi, esi; mov edx, reason;
    /// mov r8d, line; call rel32 — an OPENSSL_PUT_ERROR as clang emits it.
    fn error_site(at: u64, file_name: u64, reason: u32) -> Vec<u8> {
        let disp = (file_name as i64 - (at as i64 + 7)) as i32;
        let mut code = vec![0x48, 0x8d, 0x0d];
        code.extend(disp.to_le_bytes());
        code.extend([0xbf, 16, 0, 0, 0, 0x31, 0xf6, 0xba]);
        code.extend(reason.to_le_bytes());
        code.extend([0x41, 0xb8, 0x10, 0, 0, 0, 0xe8, 0, 0, 0, 0]);
        code
    }

    #[test]
    fn reads_reasons_and_calls_up_to_the_padding() {
        let start = 0x1000;
        let mut code = error_site(start, 0x500, 226);
        let second = start + code.len() as u64;
        code.extend(error_site(second, 0x500, 111));
        let other = start + code.len() as u64;
        // The same site after the padding belongs to the next function.
        code.extend([0xc3, 0xcc, 0xcc]);
        code.extend(error_site(other + 3, 0x500, 66));
        let function = decode(start, &code, &[0x500]);
        assert_eq!(
            function.known_reasons(),
            [111, 226].into_iter().collect::<BTreeSet<_>>()
        );
        // Both calls are to the next instruction (rel32 0).
        assert_eq!(function.calls.len(), 2);
    }

    #[test]
    fn another_library_or_no_reason_is_unknown() {
        let mut code = error_site(0, 0x500, 226);
        code[8] = 17; // mov edi, 17: not ERR_LIB_SSL
        let function = decode(0, &code, &[0x500]);
        assert_eq!(function.reasons, [None].into_iter().collect());
        assert!(decode(0, &code, &[0x600]).reasons.is_empty());
    }
}
