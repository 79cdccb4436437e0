//! Opening a built binary: the file mapped in memory, its object format parsed, its DWARF loaded.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};

/// The DWARF reader used throughout: a slice of the mapped file (or of a decompressed copy).
pub type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

/// Errors opening a binary.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The binary's path.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The file is not an object file `object` understands.
    #[error("{path} is not an executable or library this tool can parse: {error}")]
    Object {
        /// The binary's path.
        path: PathBuf,
        /// What the parser said.
        error: object::Error,
    },
}

/// A binary mapped in memory. Parse it with [`MappedBinary::object`].
#[derive(Debug)]
pub struct MappedBinary {
    path: PathBuf,
    map: memmap2::Mmap,
}

impl MappedBinary {
    /// Maps the file at `path` read-only.
    pub fn open(path: &Path) -> Result<Self, BinaryError> {
        let io_err = |error| BinaryError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = File::open(path).map_err(io_err)?;
        // SAFETY: the map is read-only and private; the build tools replace binaries by writing a
        // new file (a new inode), so the mapped bytes do not change under us in practice. A
        // truncation by another process would fault, which is the documented risk of mapping.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    /// The path the binary was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parses the object file.
    pub fn object(&self) -> Result<object::File<'_>, BinaryError> {
        object::File::parse(&*self.map).map_err(|error| BinaryError::Object {
            path: self.path.clone(),
            error,
        })
    }

    /// The names of the binary's function symbols, demangled without their hashes
    /// (`ddsplit::gateway::Gateway::get::{{closure}}`): what a profile of it can name.
    pub fn function_names(&self) -> Result<Vec<String>, BinaryError> {
        let object = self.object()?;
        let mut names: Vec<String> = object
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .filter_map(|s| s.name().ok())
            .map(|raw| match rustc_demangle::try_demangle(raw) {
                Ok(name) => format!("{name:#}"),
                Err(_) => raw.to_string(),
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// The sections of a binary's DWARF, held so that [`Reader`]s can borrow them.
#[derive(Debug)]
pub struct DwarfData<'a> {
    sections: gimli::DwarfSections<Cow<'a, [u8]>>,
    endian: gimli::RunTimeEndian,
    has_debug_info: bool,
}

impl<'a> DwarfData<'a> {
    /// Loads the DWARF sections of `object` (missing sections are empty).
    pub fn load(object: &object::File<'a>) -> Self {
        let endian = if object.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let load = |id: gimli::SectionId| -> Result<Cow<'a, [u8]>, gimli::Error> {
            Ok(match object.section_by_name(id.name()) {
                Some(section) => section.uncompressed_data().unwrap_or(Cow::Borrowed(&[])),
                None => Cow::Borrowed(&[]),
            })
        };
        let has_debug_info = object
            .section_by_name(".debug_info")
            .is_some_and(|s| s.uncompressed_data().is_ok_and(|d| !d.is_empty()));
        let sections = gimli::DwarfSections::load(load).expect("the section loader never fails");
        Self {
            sections,
            endian,
            has_debug_info,
        }
    }

    /// True when the binary has a non-empty `.debug_info` section.
    pub fn has_debug_info(&self) -> bool {
        self.has_debug_info
    }

    /// A `gimli::Dwarf` borrowing these sections.
    pub fn dwarf(&self) -> gimli::Dwarf<Reader<'_>> {
        self.sections
            .borrow(|section| gimli::EndianSlice::new(section, self.endian))
    }
}

/// The advice printed when a binary has no debug info.
pub const DEBUG_INFO_HINT: &str = "build it with debug info, e.g. `cargo build --profile profiling` \
     (the workspace's `profiling` profile is release with `debug = \"full\"` and `strip = \"none\"`)";
