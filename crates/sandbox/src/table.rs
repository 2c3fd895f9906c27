//! The emulators' shared table engine: a vendor object is a [`TableDef`] (typed columns with
//! limits, which are required, which are unique and whether uniqueness ignores case) and a
//! [`Table`] holds its rows in id order, so that listing pages by key range (`after` an id)
//! costs the same on page one as on page ten thousand.
//!
//! The engine knows no vendor. It checks values against their column and says precisely what is
//! wrong ([`TableError`]); each vendor's module turns that into the vendor's own error body and
//! status, and keeps its dialect (id formats, field names on the wire, quirks) to itself. Links
//! between records (HubSpot associations, Zoho contact roles, Salesforce contact roles) are a
//! [`LinkSet`].

use std::collections::{BTreeSet, HashMap};

/// How a unique column compares values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    /// Exactly as written.
    Exact,
    /// Ignoring letter case (Unicode lower-casing), as vendors compare emails and external ids.
    Case,
}

impl Fold {
    fn key(self, value: &str) -> Box<str> {
        match self {
            Fold::Exact => value.into(),
            Fold::Case => value.to_lowercase().into_boxed_str(),
        }
    }
}

/// What a column holds.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    /// Text of at most `max` characters (Unicode scalar values, as vendors count).
    Text {
        /// The longest value accepted, in characters.
        max: usize,
    },
    /// A whole number within `min..=max`.
    Integer {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// A decimal number, at most `max` in magnitude.
    Number {
        /// The largest magnitude accepted.
        max: f64,
    },
    /// A flag.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A point in time, milliseconds since the Unix epoch.
    DateTime,
    /// One of a fixed list of values (a picklist). `fold` says whether a value is matched
    /// ignoring case; the option as declared is what is stored.
    Choice {
        /// The accepted values.
        options: Vec<String>,
        /// How a written value is matched against them.
        fold: Fold,
    },
    /// The id of a row of another table (named as the vendor names the object). The engine
    /// checks the row exists when the write goes through a [`Tables`].
    Ref {
        /// The table the id points into.
        table: &'static str,
    },
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The vendor's name for it, as it appears on the wire.
    pub name: String,
    /// What it holds.
    pub ty: ColumnType,
    /// Whether a new row must have a value.
    pub required: bool,
    /// Whether no two live rows may hold the same value, and how values compare.
    pub unique: Option<Fold>,
    /// Whether clients may not write it (system columns: set by the emulator only).
    pub read_only: bool,
}

impl Column {
    /// An optional, writable, non-unique column.
    pub fn new(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
            required: false,
            unique: None,
            read_only: false,
        }
    }

    /// A text column of at most `max` characters.
    pub fn text(name: &str, max: usize) -> Column {
        Column::new(name, ColumnType::Text { max })
    }

    /// This column, required on create.
    pub fn required(mut self) -> Column {
        self.required = true;
        self
    }

    /// This column, unique among live rows, compared as `fold` says.
    pub fn unique(mut self, fold: Fold) -> Column {
        self.unique = Some(fold);
        self
    }

    /// This column, written by the emulator only.
    pub fn read_only(mut self) -> Column {
        self.read_only = true;
        self
    }
}

/// A vendor object's schema: its name and columns. Data, not code: an emulator declares one per
/// object it serves and gets storage, checks, indexes and paging from [`Table`].
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    /// The vendor's name for the object (`deals`, `Opportunity`, `opportunities`).
    pub name: &'static str,
    /// Its columns, numbered by position.
    pub columns: Vec<Column>,
}

impl TableDef {
    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text, a date (`YYYY-MM-DD`) or a picklist option.
    Text(Box<str>),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Num(f64),
    /// A flag.
    Bool(bool),
    /// Milliseconds since the Unix epoch.
    Time(i64),
    /// Another row's id.
    Ref(u64),
}

impl Cell {
    /// The text of a `Text` cell.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The id of a `Ref` cell.
    pub fn as_ref_id(&self) -> Option<u64> {
        match self {
            Cell::Ref(id) => Some(*id),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Cell::Text(_) => "text",
            Cell::Int(_) => "a whole number",
            Cell::Num(_) => "a number",
            Cell::Bool(_) => "a boolean",
            Cell::Time(_) => "a date-time",
            Cell::Ref(_) => "a record id",
        }
    }
}

/// One record.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Its id within the table (each vendor renders it its own way).
    pub id: u64,
    /// The non-empty cells as (column, value), in column order: sparse, since vendor objects
    /// have hundreds of columns and a record fills few of them.
    cells: Vec<(u32, Cell)>,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
    /// When it last changed, ms since the epoch.
    pub modified_ms: i64,
    /// When it was archived or deleted (soft), if it was.
    pub archived_ms: Option<i64>,
}

impl Row {
    /// The cell of column `column`.
    pub fn get(&self, column: usize) -> Option<&Cell> {
        let column = u32::try_from(column).ok()?;
        self.cells
            .binary_search_by_key(&column, |(c, _)| *c)
            .ok()
            .map(|at| &self.cells[at].1)
    }

    /// The non-empty cells as (column, value), in column order.
    pub fn cells(&self) -> impl Iterator<Item = (usize, &Cell)> {
        self.cells.iter().map(|(c, v)| (*c as usize, v))
    }

    fn set(&mut self, column: usize, cell: Option<Cell>) {
        let Ok(column) = u32::try_from(column) else {
            return;
        };
        match (self.cells.binary_search_by_key(&column, |(c, _)| *c), cell) {
            (Ok(at), Some(cell)) => self.cells[at].1 = cell,
            (Ok(at), None) => {
                self.cells.remove(at);
            }
            (Err(at), Some(cell)) => self.cells.insert(at, (column, cell)),
            (Err(_), None) => {}
        }
    }

    /// Whether it is live (not archived or deleted).
    pub fn is_live(&self) -> bool {
        self.archived_ms.is_none()
    }
}

/// What a write got wrong, precisely enough for a vendor module to build its own error body.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TableError {
    /// No such column.
    #[error("no column `{column}`")]
    UnknownColumn {
        /// The name written.
        column: String,
    },
    /// A client wrote a read-only column.
    #[error("`{column}` is read-only")]
    ReadOnly {
        /// The column.
        column: String,
    },
    /// The value is not of the column's type.
    #[error("`{column}` expects {expected}, got {got}")]
    WrongType {
        /// The column.
        column: String,
        /// What it holds.
        expected: &'static str,
        /// What was written.
        got: &'static str,
    },
    /// Text longer than the column holds.
    #[error("`{column}` holds at most {max} characters, got {len}")]
    TooLong {
        /// The column.
        column: String,
        /// Its limit.
        max: usize,
        /// The length written.
        len: usize,
    },
    /// A number outside the column's range.
    #[error("`{column}` is out of range")]
    OutOfRange {
        /// The column.
        column: String,
    },
    /// A date that is not `YYYY-MM-DD` or not a real day.
    #[error("`{column}` expects a date YYYY-MM-DD")]
    BadDate {
        /// The column.
        column: String,
    },
    /// A value that is none of a picklist's options.
    #[error("`{column}` has no such option")]
    NotAnOption {
        /// The column.
        column: String,
    },
    /// A new row without a required column.
    #[error("`{column}` is required")]
    Required {
        /// The column.
        column: String,
    },
    /// Another live row holds the value of a unique column.
    #[error("`{column}` duplicates row {existing}")]
    Duplicate {
        /// The column.
        column: String,
        /// The row holding it.
        existing: u64,
    },
    /// A reference to a row that does not exist (or is archived).
    #[error("`{column}` points at a missing {table} row {id}")]
    MissingRef {
        /// The column.
        column: String,
        /// The table pointed into.
        table: &'static str,
        /// The id written.
        id: u64,
    },
    /// The row to change does not exist (or is archived).
    #[error("no row {id}")]
    NoRow {
        /// The id asked for.
        id: u64,
    },
}

/// Which rows a listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// Live rows only.
    Live,
    /// Archived (soft-deleted) rows only.
    Archived,
    /// Both.
    All,
}

impl Show {
    fn shows(self, row: &Row) -> bool {
        match self {
            Show::Live => row.is_live(),
            Show::Archived => !row.is_live(),
            Show::All => true,
        }
    }
}

/// One page of a key-range listing.
#[derive(Debug)]
pub struct Page<'a> {
    /// The rows, in id order.
    pub rows: Vec<&'a Row>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<u64>,
}

/// A table's rows, in id order, with an index per unique column.
#[derive(Clone, Debug)]
pub struct Table {
    def: TableDef,
    rows: Vec<Row>,
    next_id: u64,
    live: usize,
    unique: Vec<Option<HashMap<Box<str>, u64>>>,
}

impl Table {
    /// An empty table whose first row gets id `first_id` (vendors start their ids in different
    /// places; HubSpot's look like large numbers).
    pub fn new(def: TableDef, first_id: u64) -> Table {
        let unique = def
            .columns
            .iter()
            .map(|c| c.unique.map(|_| HashMap::new()))
            .collect();
        Table {
            def,
            rows: Vec::new(),
            next_id: first_id,
            live: 0,
            unique,
        }
    }

    /// The schema.
    pub fn def(&self) -> &TableDef {
        &self.def
    }

    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.def.column(name)
    }

    /// Adds a column (a custom field created through the API): every row gets it, empty.
    /// Returns its position.
    pub fn add_column(&mut self, column: Column) -> usize {
        self.unique.push(column.unique.map(|_| HashMap::new()));
        self.def.columns.push(column);
        self.def.columns.len() - 1
    }

    /// How many live rows it holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether it holds no live row.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The id the next new row gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id).ok()
    }

    /// Row `id`, live or archived.
    pub fn get_any(&self, id: u64) -> Option<&Row> {
        self.position(id).map(|at| &self.rows[at])
    }

    /// Live row `id`.
    pub fn get(&self, id: u64) -> Option<&Row> {
        self.get_any(id).filter(|r| r.is_live())
    }

    /// The live row holding `value` in unique column `column`.
    pub fn find(&self, column: usize, value: &str) -> Option<&Row> {
        let fold = self.def.columns.get(column)?.unique?;
        let id = *self.unique.get(column)?.as_ref()?.get(&fold.key(value))?;
        self.get(id)
    }

    /// Up to `limit` rows shown by `show` with ids greater than `after` (all when `None`), and
    /// where the next page starts.
    pub fn page(&self, after: Option<u64>, limit: usize, show: Show) -> Page<'_> {
        let start = match after {
            None => 0,
            Some(after) => self.rows.partition_point(|r| r.id <= after),
        };
        let mut rows = Vec::with_capacity(limit.min(1024));
        let mut last = None;
        for row in &self.rows[start..] {
            if rows.len() == limit {
                return Page {
                    rows,
                    next_after: last,
                };
            }
            if show.shows(row) {
                last = Some(row.id);
                rows.push(row);
            }
        }
        Page {
            rows,
            next_after: None,
        }
    }

    /// Every row shown by `show`, in id order.
    pub fn iter(&self, show: Show) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| show.shows(r))
    }

    /// Checks `value` against column `column` and returns the cell to store (a picklist value
    /// becomes its declared option). `None` clears the cell.
    pub fn check(&self, column: usize, value: Option<Cell>) -> Result<Option<Cell>, TableError> {
        let col = self
            .def
            .columns
            .get(column)
            .ok_or_else(|| TableError::UnknownColumn {
                column: format!("#{column}"),
            })?;
        let Some(value) = value else {
            return Ok(None);
        };
        let name = || col.name.clone();
        let wrong = |expected| TableError::WrongType {
            column: col.name.clone(),
            expected,
            got: value.kind(),
        };
        let cell = match (&col.ty, &value) {
            (ColumnType::Text { max }, Cell::Text(s)) => {
                let len = s.chars().count();
                if len > *max {
                    return Err(TableError::TooLong {
                        column: name(),
                        max: *max,
                        len,
                    });
                }
                value
            }
            (ColumnType::Integer { min, max }, Cell::Int(n)) => {
                if n < min || n > max {
                    return Err(TableError::OutOfRange { column: name() });
                }
                value
            }
            (ColumnType::Number { max }, Cell::Num(n)) => {
                if !n.is_finite() || n.abs() > *max {
                    return Err(TableError::OutOfRange { column: name() });
                }
                value
            }
            (ColumnType::Number { max }, Cell::Int(n)) => {
                #[allow(clippy::cast_precision_loss)]
                let n = *n as f64;
                if n.abs() > *max {
                    return Err(TableError::OutOfRange { column: name() });
                }
                Cell::Num(n)
            }
            (ColumnType::Bool, Cell::Bool(_)) | (ColumnType::DateTime, Cell::Time(_)) => value,
            (ColumnType::Date, Cell::Text(s)) => {
                if !is_date(s) {
                    return Err(TableError::BadDate { column: name() });
                }
                value
            }
            (ColumnType::Choice { options, fold }, Cell::Text(s)) => {
                let key = fold.key(s.trim());
                let option = options
                    .iter()
                    .find(|o| fold.key(o) == key)
                    .ok_or(TableError::NotAnOption { column: name() })?;
                Cell::Text(option.as_str().into())
            }
            (ColumnType::Ref { .. }, Cell::Ref(_)) => value,
            (ColumnType::Text { .. } | ColumnType::Date | ColumnType::Choice { .. }, _) => {
                return Err(wrong("text"));
            }
            (ColumnType::Integer { .. }, _) => return Err(wrong("a whole number")),
            (ColumnType::Number { .. }, _) => return Err(wrong("a number")),
            (ColumnType::Bool, _) => return Err(wrong("a boolean")),
            (ColumnType::DateTime, _) => return Err(wrong("a date-time")),
            (ColumnType::Ref { .. }, _) => return Err(wrong("a record id")),
        };
        Ok(Some(cell))
    }

    /// Checks a write of `cells` (column, value) to row `id` (`None`: a new row) without
    /// applying it: types and limits, read-only columns (unless `system`), required columns on a
    /// new row, unique columns against other live rows. Returns the cells to store.
    pub fn prepare(
        &self,
        id: Option<u64>,
        cells: Vec<(usize, Option<Cell>)>,
        system: bool,
    ) -> Result<Vec<(usize, Option<Cell>)>, TableError> {
        let existing = match id {
            Some(id) => Some(self.get(id).ok_or(TableError::NoRow { id })?),
            None => None,
        };
        let mut checked = Vec::with_capacity(cells.len());
        for (column, value) in cells {
            let col = self
                .def
                .columns
                .get(column)
                .ok_or_else(|| TableError::UnknownColumn {
                    column: format!("#{column}"),
                })?;
            if col.read_only && !system {
                return Err(TableError::ReadOnly {
                    column: col.name.clone(),
                });
            }
            let cell = self.check(column, value)?;
            if let (Some(fold), Some(Cell::Text(s))) = (col.unique, &cell) {
                let holder = self.unique[column]
                    .as_ref()
                    .and_then(|index| index.get(&fold.key(s)))
                    .copied();
                if let Some(holder) = holder.filter(|h| Some(*h) != id) {
                    return Err(TableError::Duplicate {
                        column: col.name.clone(),
                        existing: holder,
                    });
                }
            }
            checked.push((column, cell));
        }
        for (at, col) in self.def.columns.iter().enumerate() {
            if !col.required {
                continue;
            }
            let written = checked.iter().rev().find(|(c, _)| *c == at);
            let empty = match (written, existing) {
                (Some((_, cell)), _) => cell.is_none(),
                (None, Some(row)) => row.get(at).is_none(),
                (None, None) => true,
            };
            if empty {
                return Err(TableError::Required {
                    column: col.name.clone(),
                });
            }
        }
        Ok(checked)
    }

    /// Creates a row from `cells` (checked as [`Table::prepare`] does) at `now_ms`; returns its id.
    pub fn insert(
        &mut self,
        cells: Vec<(usize, Option<Cell>)>,
        now_ms: i64,
        system: bool,
    ) -> Result<u64, TableError> {
        let checked = self.prepare(None, cells, system)?;
        Ok(self.insert_checked(checked, now_ms, now_ms))
    }

    /// Creates a row from cells already checked, with the given timestamps (seeding history).
    pub fn insert_checked(
        &mut self,
        cells: Vec<(usize, Option<Cell>)>,
        created_ms: i64,
        modified_ms: i64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut row = Row {
            id,
            cells: Vec::with_capacity(cells.len()),
            created_ms,
            modified_ms,
            archived_ms: None,
        };
        for (column, cell) in cells {
            row.set(column, cell);
        }
        self.index(&row);
        self.rows.push(row);
        self.live += 1;
        id
    }

    /// Changes row `id` (checked as [`Table::prepare`] does) at `now_ms`.
    pub fn update(
        &mut self,
        id: u64,
        cells: Vec<(usize, Option<Cell>)>,
        now_ms: i64,
        system: bool,
    ) -> Result<(), TableError> {
        let checked = self.prepare(Some(id), cells, system)?;
        let at = self.position(id).ok_or(TableError::NoRow { id })?;
        let row = self.rows[at].clone();
        self.unindex(&row);
        let row = &mut self.rows[at];
        for (column, cell) in checked {
            row.set(column, cell);
        }
        row.modified_ms = now_ms;
        let row = row.clone();
        self.index(&row);
        Ok(())
    }

    /// Stamps live row `id` as modified at `now_ms`, leaving its cells alone (a vendor's bulk
    /// job touching records). Returns whether the row is live.
    pub fn touch(&mut self, id: u64, now_ms: i64) -> bool {
        match self.position(id).filter(|at| self.rows[*at].is_live()) {
            Some(at) => {
                self.rows[at].modified_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// Archives (soft-deletes) live row `id` at `now_ms`; its unique values are free again.
    pub fn archive(&mut self, id: u64, now_ms: i64) -> Result<(), TableError> {
        let at = self
            .position(id)
            .filter(|at| self.rows[*at].is_live())
            .ok_or(TableError::NoRow { id })?;
        let row = self.rows[at].clone();
        self.unindex(&row);
        self.rows[at].archived_ms = Some(now_ms);
        self.rows[at].modified_ms = now_ms;
        self.live -= 1;
        Ok(())
    }

    fn index(&mut self, row: &Row) {
        if !row.is_live() {
            return;
        }
        for (at, col) in self.def.columns.iter().enumerate() {
            if let (Some(fold), Some(Cell::Text(s)), Some(index)) =
                (col.unique, row.get(at), self.unique[at].as_mut())
            {
                index.insert(fold.key(s), row.id);
            }
        }
    }

    fn unindex(&mut self, row: &Row) {
        for (at, col) in self.def.columns.iter().enumerate() {
            if let (Some(fold), Some(Cell::Text(s)), Some(index)) =
                (col.unique, row.get(at), self.unique[at].as_mut())
            {
                let key = fold.key(s);
                if index.get(&key) == Some(&row.id) {
                    index.remove(&key);
                }
            }
        }
    }
}

/// Several tables of one account, so that a write's references can be checked against the
/// rows they point at.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    tables: Vec<Table>,
}

impl Tables {
    /// No tables.
    pub fn new() -> Tables {
        Tables::default()
    }

    /// Adds `table`; returns its position.
    pub fn add(&mut self, table: Table) -> usize {
        self.tables.push(table);
        self.tables.len() - 1
    }

    /// The table named `name`.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.def.name == name)
    }

    /// The table named `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.def.name == name)
    }

    /// Checks that every reference among `cells` of table `name` points at a live row.
    pub fn check_refs(
        &self,
        name: &str,
        cells: &[(usize, Option<Cell>)],
    ) -> Result<(), TableError> {
        let Some(table) = self.get(name) else {
            return Ok(());
        };
        for (column, cell) in cells {
            let (Some(col), Some(Cell::Ref(id))) = (table.def.columns.get(*column), cell) else {
                continue;
            };
            if let ColumnType::Ref { table: target } = col.ty
                && self.get(target).and_then(|t| t.get(*id)).is_none()
            {
                return Err(TableError::MissingRef {
                    column: col.name.clone(),
                    table: target,
                    id: *id,
                });
            }
        }
        Ok(())
    }

    /// Creates a row in table `name`, its references checked; returns its id.
    pub fn insert(
        &mut self,
        name: &str,
        cells: Vec<(usize, Option<Cell>)>,
        now_ms: i64,
        system: bool,
    ) -> Result<u64, TableError> {
        self.check_refs(name, &cells)?;
        let table = self
            .get_mut(name)
            .ok_or_else(|| TableError::UnknownColumn {
                column: name.to_owned(),
            })?;
        table.insert(cells, now_ms, system)
    }

    /// Changes row `id` of table `name`, its references checked.
    pub fn update(
        &mut self,
        name: &str,
        id: u64,
        cells: Vec<(usize, Option<Cell>)>,
        now_ms: i64,
        system: bool,
    ) -> Result<(), TableError> {
        self.check_refs(name, &cells)?;
        let table = self
            .get_mut(name)
            .ok_or_else(|| TableError::UnknownColumn {
                column: name.to_owned(),
            })?;
        table.update(id, cells, now_ms, system)
    }
}

/// Links between rows of two tables (associations, contact roles), each with a label (an
/// association type id, a role): a set ordered by (from, to, label), with the reverse kept too,
/// so that both directions list in id order and page by key range.
#[derive(Clone, Debug, Default)]
pub struct LinkSet {
    forward: BTreeSet<(u64, u64, u32)>,
    backward: BTreeSet<(u64, u64, u32)>,
}

impl LinkSet {
    /// No links.
    pub fn new() -> LinkSet {
        LinkSet::default()
    }

    /// Links `from` to `to` with `label`; `false` if that link existed.
    pub fn link(&mut self, from: u64, to: u64, label: u32) -> bool {
        self.backward.insert((to, from, label));
        self.forward.insert((from, to, label))
    }

    /// Removes the link; `false` if there was none.
    pub fn unlink(&mut self, from: u64, to: u64, label: u32) -> bool {
        self.backward.remove(&(to, from, label));
        self.forward.remove(&(from, to, label))
    }

    /// Removes every link of `from` (its row was deleted).
    pub fn unlink_all_from(&mut self, from: u64) {
        let gone: Vec<_> = self
            .forward
            .range((from, 0, 0)..=(from, u64::MAX, u32::MAX))
            .copied()
            .collect();
        for (f, t, l) in gone {
            self.unlink(f, t, l);
        }
    }

    /// Removes every link to `to` (its row was deleted).
    pub fn unlink_all_to(&mut self, to: u64) {
        let gone: Vec<_> = self
            .backward
            .range((to, 0, 0)..=(to, u64::MAX, u32::MAX))
            .copied()
            .collect();
        for (t, f, l) in gone {
            self.unlink(f, t, l);
        }
    }

    /// `from`'s links as (to, label), in `to` order, after `after` (a `to` id), at most `limit`.
    pub fn from(&self, from: u64, after: Option<u64>, limit: usize) -> Vec<(u64, u32)> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        self.forward
            .range((from, start, 0)..=(from, u64::MAX, u32::MAX))
            .take(limit)
            .map(|(_, to, label)| (*to, *label))
            .collect()
    }

    /// The links to `to` as (from, label), in `from` order, after `after`, at most `limit`.
    pub fn to(&self, to: u64, after: Option<u64>, limit: usize) -> Vec<(u64, u32)> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        self.backward
            .range((to, start, 0)..=(to, u64::MAX, u32::MAX))
            .take(limit)
            .map(|(_, from, label)| (*from, *label))
            .collect()
    }

    /// How many links there are.
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }
}

/// Whether `s` is a real calendar date written `YYYY-MM-DD`.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deals() -> TableDef {
        TableDef {
            name: "deals",
            columns: vec![
                Column::text("name", 10).required(),
                Column::new("amount", ColumnType::Number { max: 1e12 }),
                Column::new("close", ColumnType::Date),
                Column::new(
                    "stage",
                    ColumnType::Choice {
                        options: vec!["Open".into(), "Closed Won".into()],
                        fold: Fold::Case,
                    },
                ),
                Column::text("ext", 20).unique(Fold::Case),
                Column::new("company", ColumnType::Ref { table: "companies" }),
                Column::new("probability", ColumnType::Integer { min: 0, max: 100 }),
                Column::text("system", 5).read_only(),
            ],
        }
    }

    fn text(s: &str) -> Option<Cell> {
        Some(Cell::Text(s.into()))
    }

    #[test]
    fn values_are_checked_against_their_column() {
        let mut t = Table::new(deals(), 1);
        assert_eq!(
            t.insert(vec![(0, text("Ünïcødé ok"))], 0, false),
            Ok(1),
            "ten characters, more bytes"
        );
        let err = |t: &mut Table, cells| t.insert(cells, 0, false).unwrap_err();
        assert!(matches!(
            err(&mut t, vec![(0, text("eleven char"))]),
            TableError::TooLong {
                max: 10,
                len: 11,
                ..
            }
        ));
        assert!(matches!(
            err(&mut t, vec![(1, Some(Cell::Num(1.0)))]),
            TableError::Required { .. }
        ));
        assert!(matches!(
            err(&mut t, vec![(0, text("a")), (1, text("x"))]),
            TableError::WrongType {
                expected: "a number",
                ..
            }
        ));
        assert!(matches!(
            err(&mut t, vec![(0, text("a")), (2, text("2027-02-29"))]),
            TableError::BadDate { .. }
        ));
        assert!(matches!(
            err(&mut t, vec![(0, text("a")), (3, text("Lost"))]),
            TableError::NotAnOption { .. }
        ));
        assert!(matches!(
            err(&mut t, vec![(0, text("a")), (6, Some(Cell::Int(101)))]),
            TableError::OutOfRange { .. }
        ));
        assert!(matches!(
            err(&mut t, vec![(0, text("a")), (7, text("x"))]),
            TableError::ReadOnly { .. }
        ));
        let id = t
            .insert(
                vec![
                    (0, text("b")),
                    (3, text(" closed won ")),
                    (1, Some(Cell::Int(5))),
                ],
                0,
                false,
            )
            .expect("valid");
        let row = t.get(id).expect("stored");
        assert_eq!(
            row.get(3),
            Some(&Cell::Text("Closed Won".into())),
            "the option as declared"
        );
        assert_eq!(row.get(1), Some(&Cell::Num(5.0)));
        assert!(
            t.insert(vec![(0, text("c")), (7, text("sys"))], 0, true)
                .is_ok()
        );
    }

    #[test]
    fn unique_columns_fold_case_and_free_archived_values() {
        let mut t = Table::new(deals(), 100);
        let a = t
            .insert(vec![(0, text("a")), (4, text("Key-1"))], 0, false)
            .expect("a");
        assert_eq!(
            t.insert(vec![(0, text("b")), (4, text("KEY-1"))], 0, false),
            Err(TableError::Duplicate {
                column: "ext".into(),
                existing: a
            })
        );
        assert_eq!(t.find(4, "key-1").map(|r| r.id), Some(a));
        assert!(
            t.update(a, vec![(4, text("key-1"))], 1, false).is_ok(),
            "its own value"
        );
        t.archive(a, 2).expect("archive");
        assert!(t.find(4, "key-1").is_none());
        assert_eq!(t.len(), 0);
        let b = t
            .insert(vec![(0, text("b")), (4, text("KEY-1"))], 3, false)
            .expect("free again");
        assert_eq!(t.find(4, "Key-1").map(|r| r.id), Some(b));
        assert!(matches!(
            t.update(a, vec![], 4, false),
            Err(TableError::NoRow { .. })
        ));
        assert!(matches!(
            t.update(b, vec![(0, None)], 4, false),
            Err(TableError::Required { .. })
        ));
    }

    #[test]
    fn pages_by_key_range_without_losing_or_repeating_rows() {
        let mut t = Table::new(deals(), 1);
        for n in 0..25 {
            t.insert(vec![(0, text(&format!("d{n}")))], n, false)
                .expect("row");
        }
        t.archive(5, 100).expect("archive");
        t.archive(25, 100).expect("archive");
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = t.page(after, 7, Show::Live);
            seen.extend(page.rows.iter().map(|r| r.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<u64> = (1..=25).filter(|id| *id != 5 && *id != 25).collect();
        assert_eq!(seen, expected);
        let archived: Vec<u64> = t
            .page(None, 10, Show::Archived)
            .rows
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(archived, vec![5, 25]);
        assert!(t.page(Some(24), 1, Show::Live).rows.is_empty());
    }

    #[test]
    fn references_must_point_at_live_rows() {
        let mut tables = Tables::new();
        tables.add(Table::new(
            TableDef {
                name: "companies",
                columns: vec![Column::text("name", 50)],
            },
            1,
        ));
        tables.add(Table::new(deals(), 1));
        let company = tables
            .insert("companies", vec![(0, text("Acme"))], 0, false)
            .expect("company");
        assert!(
            tables
                .insert(
                    "deals",
                    vec![(0, text("a")), (5, Some(Cell::Ref(company)))],
                    0,
                    false
                )
                .is_ok()
        );
        assert!(matches!(
            tables.insert(
                "deals",
                vec![(0, text("b")), (5, Some(Cell::Ref(99)))],
                0,
                false
            ),
            Err(TableError::MissingRef {
                table: "companies",
                id: 99,
                ..
            })
        ));
    }

    #[test]
    fn links_list_both_ways_in_order() {
        let mut links = LinkSet::new();
        assert!(links.link(1, 30, 3));
        assert!(links.link(1, 20, 3));
        assert!(!links.link(1, 20, 3));
        links.link(2, 20, 3);
        assert_eq!(links.from(1, None, 10), vec![(20, 3), (30, 3)]);
        assert_eq!(links.from(1, Some(20), 10), vec![(30, 3)]);
        assert_eq!(links.to(20, None, 10), vec![(1, 3), (2, 3)]);
        links.unlink_all_to(20);
        assert_eq!(links.from(1, None, 10), vec![(30, 3)]);
        links.unlink_all_from(1);
        assert!(links.is_empty());
    }

    #[test]
    fn dates_are_real_days() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2023-13-01"));
        assert!(!is_date("2023-1-01"));
        assert!(!is_date("２０２３-01-01"));
    }
}
