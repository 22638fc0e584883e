//! Who is asking, for whom, and inside which transaction: the context every statement runs in.
//!
//! A [`RequestContext`] travels with the DataFusion session of one request (as a config
//! extension), so table scans and writes apply the caller's rights and see the caller's
//! uncommitted writes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use datafusion::prelude::SessionConfig;
use serde::{Deserialize, Serialize};

use crate::storage::table::{Key, KeySet, PartitionScope, SeqSet, TableDef, TableKind, TableShared};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Service,
    Dba,
    System,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "user" => Some(Role::User),
            "service" => Some(Role::Service),
            "dba" => Some(Role::Dba),
            "system" => Some(Role::System),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        }
    }

    /// dba and system accounts administer the server and may act for any user.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Dba | Role::System)
    }
}

/// An authenticated account.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// The caller of one request.
#[derive(Debug)]
pub struct RequestContext {
    pub principal: Principal,
    /// The user whose rows of USER and STREAM tables this request reads and writes
    /// (the caller itself for `user` and `service` accounts).
    pub acting_user: Option<String>,
    pub transaction: Option<Arc<Transaction>>,
}

impl RequestContext {
    /// A context for `principal`, acting for `acting_user` if the account may do so.
    pub fn new(
        principal: Principal,
        acting_user: Option<String>,
        transaction: Option<Arc<Transaction>>,
    ) -> Result<Self, String> {
        let acting_user = match acting_user {
            Some(user) if user.is_empty() => None,
            Some(user) if user != principal.user && !principal.role.is_admin() => {
                return Err(format!(
                    "permission denied: account '{}' (role {}) cannot act for user '{user}'; only dba and system accounts can",
                    principal.user,
                    principal.role.name()
                ));
            }
            Some(user) => Some(user),
            None if principal.role.is_admin() => None,
            None => Some(principal.user.clone()),
        };
        Ok(Self { principal, acting_user, transaction })
    }

    /// The context of a session that carries none: full rights, used by the server itself.
    pub fn of(config: &SessionConfig) -> Arc<RequestContext> {
        config.get_extension::<RequestContext>().unwrap_or_else(|| {
            Arc::new(RequestContext {
                principal: Principal { user: "system".into(), role: Role::System },
                acting_user: None,
                transaction: None,
            })
        })
    }

    /// The partitions of `def` this caller may read.
    pub fn read_scope(&self, def: &TableDef) -> Result<PartitionScope, String> {
        if !def.kind.per_user() {
            if def.access == crate::storage::table::AccessLevel::Private && self.principal.role == Role::User
            {
                return Err(format!(
                    "permission denied: {} is a private SHARED table; a user account cannot read it",
                    def.qualified_name()
                ));
            }
            return Ok(PartitionScope::One(String::new()));
        }
        Ok(match &self.acting_user {
            Some(user) => PartitionScope::One(user.clone()),
            None => PartitionScope::All,
        })
    }

    /// The partition a new row goes to, given the `_userid` the row names (if any).
    pub fn write_partition(&self, def: &TableDef, row_owner: Option<&str>) -> Result<String, String> {
        if !def.kind.per_user() {
            if self.principal.role == Role::User {
                return Err(format!(
                    "permission denied: a user account cannot change SHARED table {}",
                    def.qualified_name()
                ));
            }
            return Ok(String::new());
        }
        let owner = match (row_owner, &self.acting_user) {
            (Some(owner), Some(acting)) if owner != acting && !self.principal.role.is_admin() => {
                return Err(format!(
                    "permission denied: account '{}' cannot write rows of user '{owner}'",
                    self.principal.user
                ));
            }
            (Some(owner), _) => owner,
            (None, Some(acting)) => acting,
            (None, None) => {
                return Err(format!(
                    "{} is a {} table: rows belong to a user. Act for one (the kalam-user-id request \
                     header, or EXECUTE AS USER 'name' (...)) or give _userid",
                    def.qualified_name(),
                    def.kind.name()
                ));
            }
        };
        if owner.is_empty() {
            return Err("_userid cannot be empty".into());
        }
        Ok(owner.to_string())
    }

    /// UPDATE and DELETE: allowed on SHARED tables for service, dba and system accounts; never
    /// on STREAM tables (append-only).
    pub fn check_change(&self, def: &TableDef) -> Result<(), String> {
        if def.kind == TableKind::Stream {
            return Err(format!(
                "{} is a STREAM table: rows are append-only and expire after TTL_SECONDS",
                def.qualified_name()
            ));
        }
        self.write_partition(def, self.acting_user.as_deref().or(Some("-"))).map(|_| ())
    }
}

/// Uncommitted writes to one partition.
#[derive(Clone, Default)]
pub struct PartWrites {
    pub inserts: Vec<RecordBatch>,
    /// `_seq` of row versions this transaction deleted or replaced, with their key.
    pub deleted: SeqSet,
    pub deleted_keys: HashMap<i64, Key, ahash::RandomState>,
    /// Primary keys of the rows this transaction added (and still holds), and of committed
    /// rows it removed: with the committed keys, the keys taken in its view.
    pub added_keys: KeySet,
    pub removed_keys: KeySet,
}

/// A table's definition and data, as writes name it.
pub type TableRef<'a> = (&'a Arc<TableDef>, &'a Arc<TableShared>);

#[derive(Clone)]
pub struct TableWrites {
    pub def: Arc<TableDef>,
    pub shared: Arc<TableShared>,
    pub parts: BTreeMap<String, PartWrites>,
}

/// The staged writes of a transaction at one point.
pub struct Savepoint {
    writes: BTreeMap<u64, TableWrites>,
    staged_bytes: usize,
}

/// A transaction: writes are staged here, visible to its own statements, and applied
/// atomically by commit (or dropped by rollback).
pub struct Transaction {
    pub id: u64,
    pub started: Instant,
    writes: Mutex<BTreeMap<u64, TableWrites>>,
    staged_bytes: Mutex<usize>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transaction({})", self.id)
    }
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction {
    pub fn new() -> Self {
        Self {
            id: crate::snowflake::next_id() as u64,
            started: Instant::now(),
            writes: Mutex::new(BTreeMap::new()),
            staged_bytes: Mutex::new(0),
        }
    }

    fn with_part<T>(&self, table: TableRef, partition: &str, f: impl FnOnce(&mut PartWrites) -> T) -> T {
        let (def, shared) = table;
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let entry = writes.entry(shared.id).or_insert_with(|| TableWrites {
            def: def.clone(),
            shared: shared.clone(),
            parts: BTreeMap::new(),
        });
        entry.def = def.clone();
        f(entry.parts.entry(partition.to_string()).or_default())
    }

    /// The index of the first of `keys` (primary keys of rows a statement adds to `partition`)
    /// that a row holds in this transaction's view once the rows the statement removes
    /// (`removing`) are gone, or that comes twice; `None` when every key is free. Another
    /// transaction may still take a key first: commit checks again.
    pub fn key_taken(
        &self,
        table: TableRef,
        partition: &str,
        keys: &[&Key],
        removing: &HashSet<&Key, ahash::RandomState>,
    ) -> Option<usize> {
        let (_, shared) = table;
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let part = writes.get(&shared.id).and_then(|t| t.parts.get(partition));
        let data = shared.lock();
        let committed = data.partitions.get(partition).map(|p| &p.keys);
        let mut seen = HashSet::with_capacity_and_hasher(keys.len(), ahash::RandomState::new());
        keys.iter().copied().position(|key| {
            if !seen.insert(key) {
                return true;
            }
            if removing.contains(key) {
                return false;
            }
            let added = part.is_some_and(|p| p.added_keys.contains(key));
            let held = committed.is_some_and(|c| c.contains_key(key))
                && !part.is_some_and(|p| p.removed_keys.contains(key));
            added || held
        })
    }

    /// Stages rows (with their primary keys, for tables that have one), refusing to hold more
    /// than `bytes_max` bytes of uncommitted data.
    pub fn stage_insert(
        &self,
        table: TableRef,
        partition: &str,
        batch: RecordBatch,
        keys: Vec<Key>,
        bytes_max: usize,
    ) -> Result<(), String> {
        let bytes = crate::storage::table::batch_bytes(&batch);
        {
            let mut staged = self.staged_bytes.lock().unwrap_or_else(|p| p.into_inner());
            if *staged + bytes > bytes_max {
                return Err(format!(
                    "the transaction would hold more than {bytes_max} bytes of uncommitted rows \
                     (limits.write_bytes_max); commit in smaller parts"
                ));
            }
            *staged += bytes;
        }
        self.with_part(table, partition, |part| {
            part.inserts.push(batch);
            part.added_keys.reserve(keys.len());
            part.added_keys.extend(keys);
        });
        Ok(())
    }

    /// Stages the deletion of row versions of `partition` (their `_seq`, and key if the table
    /// has one).
    pub fn stage_deletes(&self, table: TableRef, partition: &str, rows: Vec<(i64, Option<Key>)>) {
        self.with_part(table, partition, |part| {
            part.deleted.reserve(rows.len());
            for (seq, key) in rows {
                part.deleted.insert(seq);
                if let Some(key) = key {
                    // A row this transaction added frees its key; a committed one is removed.
                    if !part.added_keys.remove(&key) {
                        part.removed_keys.insert(key.clone());
                    }
                    part.deleted_keys.insert(seq, key);
                }
            }
        });
    }

    /// Calls `f` with the staged rows and deletions of the partitions of `table_id` in `scope`.
    pub fn visit_writes(
        &self,
        table_id: u64,
        scope: &PartitionScope,
        mut f: impl FnMut(&[RecordBatch], &SeqSet),
    ) {
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(table) = writes.get(&table_id) else { return };
        for (key, part) in &table.parts {
            if matches!(scope, PartitionScope::One(one) if one != key) {
                continue;
            }
            f(&part.inserts, &part.deleted);
        }
    }

    /// What the transaction holds now, to return to with [`Transaction::rollback_to`] (several
    /// statements that must apply together or not at all). Staged batches are shared, not copied.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            writes: self.writes.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            staged_bytes: *self.staged_bytes.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Drops every write staged since `savepoint`.
    pub fn rollback_to(&self, savepoint: Savepoint) {
        *self.writes.lock().unwrap_or_else(|p| p.into_inner()) = savepoint.writes;
        *self.staged_bytes.lock().unwrap_or_else(|p| p.into_inner()) = savepoint.staged_bytes;
    }

    pub fn take_writes(&self) -> BTreeMap<u64, TableWrites> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
