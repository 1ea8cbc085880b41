//! The size of an operation with its fragments expanded, computed before validation.
//!
//! async-graphql's validation and complexity rules walk fragments as they are spread, so a
//! document of ten fragments each spreading the next ten times (under 1 KB) expands to 10^10
//! selections and pins a worker thread for minutes. Here each fragment's size is computed once
//! and memoised by name, so the walk is linear in the document, whatever it expands to.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};

/// What [`expanded_nodes`] found wrong with a document.
#[derive(Debug, PartialEq, Eq)]
pub enum CostError {
    /// A fragment spreads itself, directly or through others.
    FragmentCycle(String),
}

/// Selections (fields, inline fragments and fragment spreads) of every operation in the
/// document, each fragment spread counted with the full size of its fragment. Saturates at
/// `u64::MAX`. A spread of an unknown fragment counts one; validation reports it.
pub fn expanded_nodes(doc: &ExecutableDocument) -> Result<u64, CostError> {
    let mut walk = Walk {
        fragments: &doc.fragments,
        sizes: HashMap::new(),
    };
    let mut total = 0u64;
    match &doc.operations {
        DocumentOperations::Single(op) => {
            total = walk.selection_set(&op.node.selection_set)?;
        }
        DocumentOperations::Multiple(ops) => {
            for op in ops.values() {
                total = total.saturating_add(walk.selection_set(&op.node.selection_set)?);
            }
        }
    }
    Ok(total)
}

/// `__schema` fields of the document's operations, each fragment spread counted with its
/// fragment's (memoised by name; a cycle counts nothing more, `expanded_nodes` refuses it). An
/// introspection of the whole schema is about 375 times the work its cost says, so an operation
/// may hold one.
pub fn schema_introspections(doc: &ExecutableDocument) -> u64 {
    fn set<'a>(
        s: &'a SelectionSet,
        fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
        memo: &mut HashMap<&'a str, u64>,
    ) -> u64 {
        s.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    u64::from(f.node.name.node == "__schema")
                        + set(&f.node.selection_set.node, fragments, memo)
                }
                Selection::InlineFragment(i) => set(&i.node.selection_set.node, fragments, memo),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(n) = memo.get(name) {
                        return *n;
                    }
                    memo.insert(name, 0);
                    let n = fragments
                        .get(name)
                        .map_or(0, |f| set(&f.node.selection_set.node, fragments, memo));
                    memo.insert(name, n);
                    n
                }
            })
            .fold(0u64, u64::saturating_add)
    }
    let mut memo = HashMap::new();
    match &doc.operations {
        DocumentOperations::Single(op) => {
            set(&op.node.selection_set.node, &doc.fragments, &mut memo)
        }
        DocumentOperations::Multiple(ops) => ops
            .values()
            .map(|op| set(&op.node.selection_set.node, &doc.fragments, &mut memo))
            .fold(0u64, u64::saturating_add),
    }
}

/// Nodes of the document as written (each operation and fragment once; every selection, argument
/// and directive counted): what its parsed form holds, whatever it expands to.
pub fn written_nodes(doc: &ExecutableDocument) -> u64 {
    fn set(s: &SelectionSet) -> u64 {
        s.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    1 + f.arguments.len() as u64
                        + f.directives.len() as u64
                        + set(&f.selection_set.node)
                }
                Selection::InlineFragment(i) => {
                    1 + i.node.directives.len() as u64 + set(&i.node.selection_set.node)
                }
                Selection::FragmentSpread(f) => 1 + f.node.directives.len() as u64,
            })
            .fold(0u64, u64::saturating_add)
    }
    let operations: u64 = match &doc.operations {
        DocumentOperations::Single(op) => {
            set(&op.node.selection_set.node) + op.node.variable_definitions.len() as u64
        }
        DocumentOperations::Multiple(ops) => ops
            .values()
            .map(|op| set(&op.node.selection_set.node) + op.node.variable_definitions.len() as u64)
            .fold(0u64, u64::saturating_add),
    };
    doc.fragments
        .values()
        .map(|f| 1 + set(&f.node.selection_set.node))
        .fold(operations, u64::saturating_add)
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    /// `None` while a fragment is being measured: meeting it again is a cycle.
    sizes: HashMap<&'a str, Option<u64>>,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>) -> Result<u64, CostError> {
        let mut total = 0u64;
        for selection in &set.node.items {
            let size = match &selection.node {
                Selection::Field(field) => self.selection_set(&field.node.selection_set)?,
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            total = total.saturating_add(1).saturating_add(size);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str) -> Result<u64, CostError> {
        match self.sizes.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => return Err(CostError::FragmentCycle(name.to_owned())),
            None => {}
        }
        let Some(definition) = self.fragments.get(name) else {
            return Ok(0);
        };
        self.sizes.insert(name, None);
        let size = self.selection_set(&definition.node.selection_set)?;
        self.sizes.insert(name, Some(size));
        Ok(size)
    }
}

/// One page of the element tree with every field a front-end shows (element, splitter and port
/// scalars, the project, the box, the platform customer, the binding's id): the worst single
/// page the cost limit is set to admit at the page cap, and that two of are refused. The read
/// tests and the read benchmark's calibration run it (docs/BENCHMARKS.md).
pub const EVERY_FIELD_PAGE: &str = "query($i: ID!, $first: Int, $after: String) {
  elements(integrationId: $i, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id fid item name latitude longitude remoteUpdatedAt syncedAt freePortCount project { name }
      splitters { id fid name kind ratio portCount freePortCount boxFid box { fid }
        ports { id fid number status platformCustomer { contract document name } binding { id } splitter { fid } }
      }
    } }
  }
}";

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(query: &str) -> Result<u64, CostError> {
        expanded_nodes(&async_graphql::parser::parse_query(query).unwrap())
    }

    /// `levels` fragments, each spreading the next `fan` times; the last asks `__typename`.
    pub(crate) fn bomb(levels: usize, fan: usize) -> String {
        let mut q = String::from("query{...F0}");
        for i in 0..levels {
            q.push_str(&format!(" fragment F{i} on Query{{"));
            for _ in 0..fan {
                q.push_str(&format!("...F{} ", i + 1));
            }
            q.push('}');
        }
        q.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
        q
    }

    #[test]
    fn counts_fields_fragments_and_spreads() {
        assert_eq!(nodes("{ a b { c d } }").unwrap(), 4);
        assert_eq!(nodes("{ ... on Q { a } }").unwrap(), 2);
        // Each spread counts itself and the whole fragment.
        assert_eq!(nodes("{ ...F ...F } fragment F on Q { a b }").unwrap(), 6);
        assert_eq!(nodes("query A { a } query B { b c }").unwrap(), 3);
        assert_eq!(nodes("{ ...Missing }").unwrap(), 1);
    }

    #[test]
    fn the_fragment_bomb_is_measured_without_expanding_it() {
        // 10 levels of fan 10: 10^10 __typename selections plus the spreads.
        let size = nodes(&bomb(10, 10)).unwrap();
        assert!(size > 10_000_000_000, "{size}");
        assert_eq!(nodes(&bomb(1, 2)).unwrap(), 1 + 2 * 2);
    }

    #[test]
    fn cycles_are_reported() {
        assert_eq!(
            nodes("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }"),
            Err(CostError::FragmentCycle("A".into()))
        );
    }
}
