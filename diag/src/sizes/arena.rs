//! One compilation unit's DIEs that describe types, flattened into an arena with parent links.
//!
//! Function bodies (`DW_TAG_subprogram` children: variables, inlined calls, lexical blocks) are
//! the bulk of a release binary's DWARF and hold no type definitions in Rust's output, so they
//! are skipped without being stored.

use std::collections::HashMap;

use gimli::{AttributeValue, DwTag, UnitOffset, constants as dw};

use crate::binary::Reader;

/// Index of a [`Die`] in its [`UnitArena`].
pub type DieIdx = u32;

/// The part of a DIE the sizes report needs.
#[derive(Debug, Clone)]
pub struct Die<'a> {
    pub tag: DwTag,
    pub name: Option<&'a [u8]>,
    /// For a `DW_TAG_subprogram`: its mangled symbol, which says whose method it is.
    pub linkage_name: Option<&'a [u8]>,
    pub byte_size: Option<u64>,
    pub alignment: Option<u64>,
    pub type_ref: Option<UnitOffset>,
    pub member_offset: Option<u64>,
    /// For `DW_TAG_subrange_type`: the element count.
    pub count: Option<u64>,
    pub declaration: bool,
    pub artificial: bool,
    pub parent: Option<DieIdx>,
    pub children: Vec<DieIdx>,
}

/// The type-describing DIEs of one unit.
#[derive(Debug, Default)]
pub struct UnitArena<'a> {
    pub dies: Vec<Die<'a>>,
    by_offset: HashMap<UnitOffset, DieIdx>,
}

impl<'a> UnitArena<'a> {
    /// Reads the DIEs of `unit`, skipping function bodies.
    pub fn read(
        dwarf: &gimli::Dwarf<Reader<'a>>,
        unit: &gimli::Unit<Reader<'a>>,
    ) -> gimli::Result<Self> {
        let mut arena = Self::default();
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        arena.walk(dwarf, unit, root, None)?;
        Ok(arena)
    }

    /// The DIE at `offset` in this unit, if it was stored.
    pub fn at(&self, offset: UnitOffset) -> Option<DieIdx> {
        self.by_offset.get(&offset).copied()
    }

    /// The DIE with index `idx`.
    pub fn die(&self, idx: DieIdx) -> &Die<'a> {
        &self.dies[idx as usize]
    }

    /// The children of `idx` with tag `tag`.
    pub fn children_with(&self, idx: DieIdx, tag: DwTag) -> impl Iterator<Item = DieIdx> + '_ {
        self.die(idx)
            .children
            .iter()
            .copied()
            .filter(move |&c| self.die(c).tag == tag)
    }

    fn walk(
        &mut self,
        dwarf: &gimli::Dwarf<Reader<'a>>,
        unit: &gimli::Unit<Reader<'a>>,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
        parent: Option<DieIdx>,
    ) -> gimli::Result<()> {
        let entry = node.entry();
        let tag = entry.tag();
        let mut die = Die {
            tag,
            name: None,
            linkage_name: None,
            byte_size: None,
            alignment: None,
            type_ref: None,
            member_offset: None,
            count: None,
            declaration: false,
            artificial: false,
            parent,
            children: Vec::new(),
        };
        let mut lower_bound = 0u64;
        let mut upper_bound = None;
        let mut attrs = entry.attrs();
        while let Some(attr) = attrs.next()? {
            match attr.name() {
                dw::DW_AT_name => {
                    die.name = dwarf
                        .attr_string(unit, attr.value())
                        .ok()
                        .map(|s| s.slice());
                }
                dw::DW_AT_linkage_name | dw::DW_AT_MIPS_linkage_name => {
                    die.linkage_name = dwarf
                        .attr_string(unit, attr.value())
                        .ok()
                        .map(|s| s.slice());
                }
                dw::DW_AT_byte_size => die.byte_size = attr.udata_value(),
                dw::DW_AT_alignment => die.alignment = attr.udata_value(),
                dw::DW_AT_type => {
                    if let AttributeValue::UnitRef(offset) = attr.value() {
                        die.type_ref = Some(offset);
                    }
                }
                dw::DW_AT_data_member_location => die.member_offset = attr.udata_value(),
                dw::DW_AT_count => die.count = attr.udata_value(),
                dw::DW_AT_lower_bound => lower_bound = attr.udata_value().unwrap_or(0),
                dw::DW_AT_upper_bound => upper_bound = attr.udata_value(),
                dw::DW_AT_declaration => die.declaration = true,
                dw::DW_AT_artificial => die.artificial = true,
                _ => {}
            }
        }
        if die.count.is_none() {
            die.count = upper_bound.map(|u| (u + 1).saturating_sub(lower_bound));
        }
        let idx = DieIdx::try_from(self.dies.len()).expect("a unit has fewer than 2^32 DIEs");
        self.by_offset.insert(entry.offset(), idx);
        self.dies.push(die);
        if let Some(p) = parent {
            self.dies[p as usize].children.push(idx);
        }
        if tag == dw::DW_TAG_subprogram {
            return Ok(());
        }
        let mut children = node.children();
        while let Some(child) = children.next()? {
            self.walk(dwarf, unit, child, Some(idx))?;
        }
        Ok(())
    }
}
