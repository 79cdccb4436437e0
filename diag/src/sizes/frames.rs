//! Stack frame sizes from `.eh_frame` unwind info (CFA offsets), best-effort.
//!
//! A function that keeps the CFA relative to `rsp` says its whole frame in the CFI: the largest
//! CFA offset minus the return address. A function with a frame pointer (`rbp`, used for large
//! or over-aligned frames) does not; for those the `sub rsp, N` of the prologue is read from
//! the code. Functions without unwind info (`panic=abort` with `-C force-unwind-tables=no`)
//! are missing, and the report says so when the section is absent.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::{StackFrame, StackFrames};

/// Functions with frames smaller than this are not listed: they are not where stack goes.
pub const FRAME_BYTES_REPORT_MIN: u64 = 512;

/// How many bytes of a frame-pointer function's code are searched for its `sub rsp, N`.
const PROLOGUE_SCAN_BYTES_MAX: usize = 64;

/// x86-64 DWARF register numbers.
const RSP: gimli::Register = gimli::X86_64::RSP;

/// Reads the stack frame sizes of `object`'s functions.
pub fn stack_frames(object: &object::File<'_>) -> StackFrames {
    if object.architecture() != object::Architecture::X86_64 {
        return StackFrames {
            note: Some(format!(
                "stack frame sizes are read for x86-64 only (this binary is {:?})",
                object.architecture()
            )),
            functions: Vec::new(),
        };
    }
    let Some(section) = object.section_by_name(".eh_frame") else {
        return StackFrames {
            note: Some("no .eh_frame section: stack frame sizes unavailable".into()),
            functions: Vec::new(),
        };
    };
    let Ok(data) = section.data() else {
        return StackFrames {
            note: Some(".eh_frame is unreadable: stack frame sizes unavailable".into()),
            functions: Vec::new(),
        };
    };
    match read_frames(object, section.address(), data) {
        Ok(functions) => StackFrames {
            note: None,
            functions,
        },
        Err(e) => StackFrames {
            note: Some(format!(
                "malformed .eh_frame ({e}): stack frame sizes unavailable"
            )),
            functions: Vec::new(),
        },
    }
}

fn read_frames(
    object: &object::File<'_>,
    eh_frame_address: u64,
    data: &[u8],
) -> gimli::Result<Vec<StackFrame>> {
    use gimli::UnwindSection;

    let endian = if object.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let eh_frame = gimli::EhFrame::new(data, endian);
    let mut bases = gimli::BaseAddresses::default().set_eh_frame(eh_frame_address);
    if let Some(text) = object.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    if let Some(hdr) = object.section_by_name(".eh_frame_hdr") {
        bases = bases.set_eh_frame_hdr(hdr.address());
    }
    let symbols = FunctionSymbols::new(object);
    let mut ctx = gimli::UnwindContext::new();
    let mut out = Vec::new();
    let mut entries = eh_frame.entries(&bases);
    while let Some(entry) = entries.next()? {
        let gimli::CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let fde = partial.parse(|section, bases, offset| section.cie_from_offset(bases, offset))?;
        let mut table = fde.rows(&eh_frame, &bases, &mut ctx)?;
        let mut cfa_rsp_max = 0i64;
        let mut frame_pointer = false;
        while let Some(row) = table.next_row()? {
            match row.cfa() {
                gimli::CfaRule::RegisterAndOffset { register, offset } if *register == RSP => {
                    cfa_rsp_max = cfa_rsp_max.max(*offset);
                }
                _ => frame_pointer = true,
            }
        }
        let address = fde.initial_address();
        // The CFA is the stack pointer before the call: minus the return address is the frame.
        let mut frame_bytes = u64::try_from(cfa_rsp_max - 8).unwrap_or(0);
        let mut source = "cfi";
        if frame_pointer && let Some(sub) = prologue_sub_rsp(object, address) {
            // Saved registers are pushed before `sub rsp`: the CFI part counts them.
            frame_bytes = frame_bytes.max(sub + frame_bytes);
            source = "prologue";
        }
        if frame_bytes < FRAME_BYTES_REPORT_MIN {
            continue;
        }
        out.push(StackFrame {
            function: symbols
                .name_at(address)
                .unwrap_or_else(|| format!("{address:#x}")),
            address,
            frame_bytes,
            source: source.to_string(),
        });
    }
    out.sort_by(|a, b| {
        b.frame_bytes
            .cmp(&a.frame_bytes)
            .then_with(|| a.function.cmp(&b.function))
    });
    out.dedup_by(|a, b| a.address == b.address);
    Ok(out)
}

/// Finds `sub rsp, imm32` (`48 81 ec`) or `sub rsp, imm8` (`48 83 ec`) near a function's start.
fn prologue_sub_rsp(object: &object::File<'_>, address: u64) -> Option<u64> {
    let section = object.sections().find(|s| {
        s.kind() == object::SectionKind::Text
            && s.address() <= address
            && address < s.address() + s.size()
    })?;
    let data = section.data().ok()?;
    let start = usize::try_from(address - section.address()).ok()?;
    let code = data.get(start..(start + PROLOGUE_SCAN_BYTES_MAX).min(data.len()))?;
    for i in 0..code.len().saturating_sub(3) {
        match code[i..] {
            [0x48, 0x81, 0xec, a, b, c, d, ..] => {
                return Some(u64::from(u32::from_le_bytes([a, b, c, d])));
            }
            [0x48, 0x83, 0xec, a, ..] => return Some(u64::from(a)),
            _ => {}
        }
    }
    None
}

/// Function symbols by address, demangled without their hash.
struct FunctionSymbols {
    by_address: Vec<(u64, String)>,
}

impl FunctionSymbols {
    fn new(object: &object::File<'_>) -> Self {
        let mut by_address: Vec<(u64, String)> = object
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), format!("{:#}", rustc_demangle::demangle(name))))
            })
            .collect();
        by_address.sort();
        by_address.dedup_by_key(|(a, _)| *a);
        Self { by_address }
    }

    fn name_at(&self, address: u64) -> Option<String> {
        let i = self
            .by_address
            .binary_search_by_key(&address, |(a, _)| *a)
            .ok()?;
        Some(self.by_address[i].1.clone())
    }
}
