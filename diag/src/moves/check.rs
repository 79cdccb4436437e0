//! Can this program be traced? x86-64 Linux, an ELF executable, dynamically linked.

use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile64, ProgramHeader};

use super::MovesError;
use crate::binary::MappedBinary;

/// Finds `program` (a path, or a name on PATH) and checks it can be traced: the platform is
/// x86-64 Linux and the program is a dynamically linked x86-64 ELF (it has a PT_INTERP, so the
/// dynamic loader runs and honours LD_PRELOAD). Returns the program's path.
pub fn check_program(program: &str) -> Result<PathBuf, MovesError> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(MovesError::UnsupportedPlatform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        });
    }
    let path = find_program(program).ok_or_else(|| MovesError::ProgramNotFound(program.into()))?;
    let mapped = MappedBinary::open(&path)?;
    let elf = ElfFile64::<object::Endianness>::parse(mapped.bytes())
        .map_err(|_| MovesError::NotElf { path: path.clone() })?;
    let endian = elf.endian();
    if elf.elf_header().e_machine.get(endian) != object::elf::EM_X86_64 {
        return Err(MovesError::NotElf { path });
    }
    let has_interp = elf
        .elf_program_headers()
        .iter()
        .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP);
    if !has_interp {
        return Err(MovesError::StaticBinary { path });
    }
    Ok(path)
}

fn find_program(program: &str) -> Option<PathBuf> {
    let as_path = Path::new(program);
    if program.contains('/') {
        return as_path.is_file().then(|| as_path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
