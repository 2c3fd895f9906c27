//! The tables the emulator keeps on the sandbox's shared table engine ([`crate::table`]):
//! `opportunity`, `annotation` (notes), `systemuser`, `transactioncurrency`, `processstage` and
//! `workflow` (the "Opportunity Sales Process" business process flow). Each is a [`Set`]: its
//! entity set, primary key and columns as the Dataverse table reference names them, declared as
//! data; the engine stores and checks the rows, this module speaks Dataverse over them (GUIDs,
//! lookups read as `_x_value` and written through `@odata.bind`, Dataverse's error bodies).
//!
//! Lookups into other tables are held as the target's GUID (lower case) with, for multi-table
//! lookups, the target's logical name in the column Dataverse keeps it in (`customeridtype`,
//! `objecttypecode`, `owneridtype`). Accounts and contacts live in the older store
//! ([`super::store`]); references into it are checked against it by the caller.

use serde_json::{Map, Value as Json, json};

use crate::table::{Cell, Column, ColumnType, Fold, Row, Table, TableDef, TableError, Tables};

use super::error::{ApiError, Entity};
use super::store::{KEY_COLUMN, guid};

/// What a column of a [`Set`] holds, in Dataverse's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dv {
    /// Single line of text (`String`) of at most this many characters.
    Text(usize),
    /// Multiple lines of text (`Memo`) of at most this many characters.
    Memo(usize),
    /// Currency (`Money`), two decimals.
    Money,
    /// Whole number in a range.
    Int(i64, i64),
    /// A choice (`Picklist`, `State`, `Status`): the options' values and labels.
    Choice(&'static str, &'static [(i64, &'static str)]),
    /// A date without time (`DateOnly`), `YYYY-MM-DD`.
    Date,
    /// A date and time, UTC.
    DateTime,
    /// Two options.
    Bool,
    /// A lookup to one of these tables (logical names), read as `_name_value`.
    Lookup(&'static [&'static str]),
    /// The logical name of a multi-table lookup's target (`customeridtype`): system-set.
    EntityName,
}

/// One column of a [`Set`].
#[derive(Clone, Copy, Debug)]
pub struct Col {
    /// The logical name.
    pub name: &'static str,
    /// What it holds.
    pub dv: Dv,
    /// The display name.
    pub label: &'static str,
    /// `RequiredLevel` (`None`, `ApplicationRequired`, `SystemRequired`).
    pub required: &'static str,
    /// Whether clients may write it.
    pub writable: bool,
}

const fn col(name: &'static str, dv: Dv, label: &'static str) -> Col {
    Col {
        name,
        dv,
        label,
        required: "None",
        writable: true,
    }
}

const fn req(mut c: Col) -> Col {
    c.required = "ApplicationRequired";
    c
}

const fn system(mut c: Col) -> Col {
    c.writable = false;
    c
}

/// A navigation property a client binds a lookup through (`parentaccountid@odata.bind`).
#[derive(Clone, Copy, Debug)]
pub struct Nav {
    /// The navigation property (`customerid_account`).
    pub name: &'static str,
    /// The lookup column it sets (`customerid`).
    pub column: &'static str,
    /// The table it points into (`account`).
    pub target: &'static str,
}

const fn nav(name: &'static str, column: &'static str, target: &'static str) -> Nav {
    Nav {
        name,
        column,
        target,
    }
}

/// A table served over the shared table engine.
#[derive(Debug)]
pub struct Set {
    /// The logical name (`opportunity`).
    pub logical: &'static str,
    /// The entity set name (`opportunities`).
    pub set: &'static str,
    /// The primary key column (`opportunityid`).
    pub id_column: &'static str,
    /// The schema name of the table (`Opportunity`).
    pub schema: &'static str,
    /// The first 32 bits of its rows' GUIDs, so that ids of two tables never collide.
    pub prefix: u32,
    /// The primary name column.
    pub primary_name: &'static str,
    /// Its columns.
    pub columns: &'static [Col],
    /// Its navigation properties for `@odata.bind`.
    pub navs: &'static [Nav],
    /// Whether clients create, update and delete its rows (the others are configuration).
    pub writable: bool,
    /// Whether it has the `ferry_sourceid` alternate key.
    pub keyed: bool,
    /// Columns whose values are unique in the table (ignoring case), besides the key.
    pub unique: &'static [&'static str],
}

impl Entity for &Set {
    fn logical(&self) -> &'static str {
        self.logical
    }
    fn set(&self) -> &'static str {
        self.set
    }
    fn id_column(&self) -> &'static str {
        self.id_column
    }
}

impl Set {
    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    fn def(&self) -> TableDef {
        TableDef {
            name: self.set,
            columns: self
                .columns
                .iter()
                .map(|c| {
                    let ty = match c.dv {
                        Dv::Text(max) | Dv::Memo(max) => ColumnType::Text { max },
                        Dv::Money => ColumnType::Number { max: MONEY_MAX },
                        Dv::Int(min, max) => ColumnType::Integer { min, max },
                        Dv::Choice(_, options) => ColumnType::Integer {
                            min: options.iter().map(|o| o.0).min().unwrap_or(0),
                            max: options.iter().map(|o| o.0).max().unwrap_or(0),
                        },
                        Dv::Date => ColumnType::Date,
                        Dv::DateTime => ColumnType::DateTime,
                        Dv::Bool => ColumnType::Bool,
                        Dv::Lookup(_) => ColumnType::Text { max: 36 },
                        Dv::EntityName => ColumnType::Text { max: 64 },
                    };
                    let column = Column::new(c.name, ty);
                    if c.name == KEY_COLUMN || self.unique.contains(&c.name) {
                        // Dataverse's collation ignores case: so does the key.
                        column.unique(Fold::Case)
                    } else {
                        column
                    }
                })
                .collect(),
        }
    }
}

/// The largest magnitude of a Money column the emulator accepts (the table reference's range
/// for `estimatedvalue`, rounded).
pub const MONEY_MAX: f64 = 1e12;
/// The longest `notetext` Dataverse holds (`Memo`, 100,000 characters).
pub const NOTETEXT_MAX: usize = 100_000;
/// The longest opportunity `name` (300 characters).
pub const OPPORTUNITY_NAME_MAX: usize = 300;

/// `statecode` of an opportunity.
pub const OPPORTUNITY_STATES: &[(i64, &str)] = &[(0, "Open"), (1, "Won"), (2, "Lost")];
/// `statuscode` of an opportunity, with the state each belongs to.
pub const OPPORTUNITY_STATUSES: &[(i64, &str)] = &[
    (1, "In Progress"),
    (2, "On Hold"),
    (3, "Won"),
    (4, "Canceled"),
    (5, "Out-Sold"),
];
/// `salesstage`: the stages of the "Opportunity Sales Process" business process flow.
pub const SALES_STAGES: &[(i64, &str)] =
    &[(0, "Qualify"), (1, "Develop"), (2, "Propose"), (3, "Close")];

/// The state a `statuscode` belongs to.
pub fn state_of_status(status: i64) -> Option<i64> {
    match status {
        1 | 2 => Some(0),
        3 => Some(1),
        4 | 5 => Some(2),
        _ => None,
    }
}

const OWNER_TARGETS: &[&str] = &["systemuser", "team"];

/// `opportunity` (a subset of the table reference's columns).
pub static OPPORTUNITY: Set = Set {
    logical: "opportunity",
    set: "opportunities",
    id_column: "opportunityid",
    schema: "Opportunity",
    prefix: 0x0dd0_0000,
    primary_name: "name",
    columns: &[
        req(col("name", Dv::Text(OPPORTUNITY_NAME_MAX), "Topic")),
        col("description", Dv::Memo(2_000), "Description"),
        col("estimatedvalue", Dv::Money, "Est. Revenue"),
        col("estimatedclosedate", Dv::Date, "Est. Close Date"),
        col("closeprobability", Dv::Int(0, 100), "Probability"),
        system(col("actualvalue", Dv::Money, "Actual Revenue")),
        system(col("actualclosedate", Dv::Date, "Actual Close Date")),
        req(col(
            "transactioncurrencyid",
            Dv::Lookup(&["transactioncurrency"]),
            "Currency",
        )),
        col("parentaccountid", Dv::Lookup(&["account"]), "Account"),
        col("parentcontactid", Dv::Lookup(&["contact"]), "Contact"),
        req(col(
            "customerid",
            Dv::Lookup(&["account", "contact"]),
            "Potential Customer",
        )),
        system(col(
            "customeridtype",
            Dv::EntityName,
            "Potential Customer Type",
        )),
        col("ownerid", Dv::Lookup(OWNER_TARGETS), "Owner"),
        system(col("owneridtype", Dv::EntityName, "Owner Type")),
        system(col(
            "statecode",
            Dv::Choice("opportunity_statecode", OPPORTUNITY_STATES),
            "Status",
        )),
        col(
            "statuscode",
            Dv::Choice("opportunity_statuscode", OPPORTUNITY_STATUSES),
            "Status Reason",
        ),
        col(
            "salesstage",
            Dv::Choice("opportunity_salesstage", SALES_STAGES),
            "Sales Stage",
        ),
        col("stepname", Dv::Text(200), "Pipeline Phase"),
        system(col(
            "stageid",
            Dv::Lookup(&["processstage"]),
            "Process Stage",
        )),
        system(col("processid", Dv::Lookup(&["workflow"]), "Process")),
        col(KEY_COLUMN, Dv::Text(100), "Ferry Source Id"),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[
        nav("parentaccountid", "parentaccountid", "account"),
        nav("parentcontactid", "parentcontactid", "contact"),
        nav("customerid_account", "customerid", "account"),
        nav("customerid_contact", "customerid", "contact"),
        nav(
            "transactioncurrencyid",
            "transactioncurrencyid",
            "transactioncurrency",
        ),
        nav("ownerid", "ownerid", "systemuser"),
    ],
    writable: true,
    keyed: true,
    unique: &[],
};

/// `annotation` (a note).
pub static ANNOTATION: Set = Set {
    logical: "annotation",
    set: "annotations",
    id_column: "annotationid",
    schema: "Annotation",
    prefix: 0x0aa0_0000,
    primary_name: "subject",
    columns: &[
        col("subject", Dv::Text(500), "Title"),
        col("notetext", Dv::Memo(NOTETEXT_MAX), "Description"),
        col("isdocument", Dv::Bool, "Is Document"),
        col("filename", Dv::Text(255), "File Name"),
        col("mimetype", Dv::Text(256), "Mime Type"),
        col(
            "objectid",
            Dv::Lookup(&["account", "contact", "opportunity"]),
            "Regarding",
        ),
        system(col("objecttypecode", Dv::EntityName, "Object Type")),
        col("ownerid", Dv::Lookup(OWNER_TARGETS), "Owner"),
        system(col("owneridtype", Dv::EntityName, "Owner Type")),
        col("overriddencreatedon", Dv::DateTime, "Record Created On"),
        col(KEY_COLUMN, Dv::Text(100), "Ferry Source Id"),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[
        nav("objectid_account", "objectid", "account"),
        nav("objectid_contact", "objectid", "contact"),
        nav("objectid_opportunity", "objectid", "opportunity"),
        nav("ownerid", "ownerid", "systemuser"),
    ],
    writable: true,
    keyed: true,
    unique: &[],
};

/// `systemuser`: the environment's users (configured, not written through the emulator).
pub static SYSTEMUSER: Set = Set {
    logical: "systemuser",
    set: "systemusers",
    id_column: "systemuserid",
    schema: "SystemUser",
    prefix: 0x5e5e_5e5e,
    primary_name: "fullname",
    columns: &[
        col("fullname", Dv::Text(200), "Full Name"),
        col("firstname", Dv::Text(64), "First Name"),
        col("lastname", Dv::Text(64), "Last Name"),
        col("internalemailaddress", Dv::Text(100), "Primary Email"),
        col("domainname", Dv::Text(1024), "User Name"),
        col("isdisabled", Dv::Bool, "Status"),
        col(
            "accessmode",
            Dv::Choice(
                "systemuser_accessmode",
                &[
                    (0, "Read-Write"),
                    (1, "Administrative"),
                    (2, "Read"),
                    (3, "Support User"),
                    (4, "Non-interactive"),
                    (5, "Delegated Admin"),
                ],
            ),
            "Access Mode",
        ),
        col("applicationid", Dv::Text(36), "Application ID"),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[],
    writable: false,
    keyed: false,
    unique: &[],
};

/// `transactioncurrency`: the environment's currencies.
pub static CURRENCY: Set = Set {
    logical: "transactioncurrency",
    set: "transactioncurrencies",
    id_column: "transactioncurrencyid",
    schema: "TransactionCurrency",
    prefix: 0x7c7c_7c7c,
    primary_name: "currencyname",
    columns: &[
        col("isocurrencycode", Dv::Text(5), "Currency Code"),
        col("currencyname", Dv::Text(100), "Currency Name"),
        col("currencysymbol", Dv::Text(10), "Currency Symbol"),
        col("currencyprecision", Dv::Int(0, 4), "Currency Precision"),
        col("exchangerate", Dv::Money, "Exchange Rate"),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[],
    writable: false,
    keyed: false,
    unique: &[],
};

/// `processstage`: the stages of the environment's business process flows.
pub static PROCESS_STAGE: Set = Set {
    logical: "processstage",
    set: "processstages",
    id_column: "processstageid",
    schema: "ProcessStage",
    prefix: 0x9595_0000,
    primary_name: "stagename",
    columns: &[
        col("stagename", Dv::Text(100), "Stage Name"),
        col(
            "stagecategory",
            Dv::Choice("processstage_category", SALES_STAGES),
            "Stage Category",
        ),
        col("processid", Dv::Lookup(&["workflow"]), "Process"),
        col("primaryentitytypecode", Dv::Text(64), "Primary Entity"),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[],
    writable: false,
    keyed: false,
    unique: &[],
};

/// `workflow`: the environment's processes (here the one business process flow).
pub static WORKFLOW: Set = Set {
    logical: "workflow",
    set: "workflows",
    id_column: "workflowid",
    schema: "Workflow",
    prefix: 0x3f3f_0000,
    primary_name: "name",
    columns: &[
        col("name", Dv::Text(100), "Process Name"),
        col("uniquename", Dv::Text(256), "Unique Name"),
        col(
            "category",
            Dv::Choice(
                "workflow_category",
                &[
                    (0, "Workflow"),
                    (1, "Dialog"),
                    (2, "Business Rule"),
                    (3, "Action"),
                    (4, "Business Process Flow"),
                    (5, "Modern Flow"),
                ],
            ),
            "Category",
        ),
        col("primaryentity", Dv::Text(64), "Primary Entity"),
        col(
            "statecode",
            Dv::Choice("workflow_statecode", &[(0, "Draft"), (1, "Activated")]),
            "Status",
        ),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[],
    writable: false,
    keyed: false,
    unique: &[],
};

/// The longest environment variable value (`defaultvalue`, `value`: `Memo`, 2,000 characters).
pub const ENVIRONMENT_VALUE_MAX: usize = 2_000;

/// `environmentvariabledefinition`: a setting of the environment (its schema name, type and
/// default value). Schema names are unique in an environment.
pub static ENVIRONMENT_VARIABLE_DEFINITION: Set = Set {
    logical: "environmentvariabledefinition",
    set: "environmentvariabledefinitions",
    id_column: "environmentvariabledefinitionid",
    schema: "EnvironmentVariableDefinition",
    prefix: 0xe5d0_0000,
    primary_name: "schemaname",
    columns: &[
        req(col("schemaname", Dv::Text(100), "Schema Name")),
        req(col("displayname", Dv::Text(100), "Display Name")),
        col("description", Dv::Memo(2_000), "Description"),
        req(col(
            "type",
            Dv::Choice(
                "environmentvariabledefinition_type",
                &[
                    (100_000_000, "String"),
                    (100_000_001, "Number"),
                    (100_000_002, "Boolean"),
                    (100_000_003, "JSON"),
                    (100_000_004, "Data source"),
                    (100_000_005, "Secret"),
                ],
            ),
            "Type",
        )),
        col(
            "defaultvalue",
            Dv::Memo(ENVIRONMENT_VALUE_MAX),
            "Default Value",
        ),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[],
    writable: true,
    keyed: false,
    unique: &["schemaname"],
};

/// `environmentvariablevalue`: the current value of an environment variable, linked to its
/// definition.
pub static ENVIRONMENT_VARIABLE_VALUE: Set = Set {
    logical: "environmentvariablevalue",
    set: "environmentvariablevalues",
    id_column: "environmentvariablevalueid",
    schema: "EnvironmentVariableValue",
    prefix: 0xe5e0_0000,
    primary_name: "schemaname",
    columns: &[
        col("schemaname", Dv::Text(100), "Schema Name"),
        col("value", Dv::Memo(ENVIRONMENT_VALUE_MAX), "Value"),
        col(
            "environmentvariabledefinitionid",
            Dv::Lookup(&["environmentvariabledefinition"]),
            "Environment Variable Definition",
        ),
        system(col("versionnumber", Dv::Int(0, i64::MAX), "Version Number")),
    ],
    navs: &[nav(
        "EnvironmentVariableDefinitionId",
        "environmentvariabledefinitionid",
        "environmentvariabledefinition",
    )],
    writable: true,
    keyed: false,
    unique: &[],
};

/// Every table on the engine, in the order they are created.
pub static SETS: &[&Set] = &[
    &SYSTEMUSER,
    &CURRENCY,
    &WORKFLOW,
    &PROCESS_STAGE,
    &OPPORTUNITY,
    &ANNOTATION,
    &ENVIRONMENT_VARIABLE_DEFINITION,
    &ENVIRONMENT_VARIABLE_VALUE,
];

/// The set named `name` (entity set name).
pub fn by_set(name: &str) -> Option<&'static Set> {
    SETS.iter().copied().find(|s| s.set == name)
}

/// The set whose logical name is `name`.
pub fn by_logical(name: &str) -> Option<&'static Set> {
    SETS.iter().copied().find(|s| s.logical == name)
}

/// The currencies of the environment: (ISO code, name, symbol, exchange rate to the base).
/// The first is the base currency, which an opportunity gets when it names none.
pub const CURRENCIES: &[(&str, &str, &str, f64)] = &[
    ("USD", "US Dollar", "$", 1.0),
    ("EUR", "Euro", "€", 0.92),
    ("GBP", "Pound Sterling", "£", 0.79),
    ("JPY", "Yen", "¥", 151.0),
    ("CAD", "Canadian Dollar", "CA$", 1.36),
];

/// The name of the business process flow opportunities follow.
pub const PROCESS_NAME: &str = "Opportunity Sales Process";

/// The application user the emulator's client credentials sign in as (`WhoAmI`'s `UserId`):
/// the default owner of what it creates.
pub const APP_USER_NAME: &str = "# ferry";

/// The rows of the tables on the engine, and the number that makes this environment's GUIDs its
/// own.
#[derive(Clone, Debug)]
pub struct Records {
    /// The engine's tables, one per [`SETS`] entry.
    pub tables: Tables,
    /// Mixed into every GUID, so two environments' ids differ (as Dataverse's do).
    pub salt: u32,
    version: i64,
}

impl Default for Records {
    fn default() -> Self {
        Records::new(0)
    }
}

impl Records {
    /// The configured environment: the users of `accounts::account_users("dynamics")` after
    /// the application user, the currencies, the business process flow and its stages.
    pub fn new(salt: u32) -> Records {
        let mut tables = Tables::new();
        for set in SETS {
            tables.add(Table::new(set.def(), 1));
        }
        let mut records = Records {
            tables,
            salt,
            version: 3_000_000,
        };
        let text = |s: &str| Some(Cell::Text(s.into()));
        let app = [
            ("fullname", text(APP_USER_NAME)),
            ("firstname", text("#")),
            ("lastname", text("ferry")),
            ("accessmode", Some(Cell::Int(4))),
            ("isdisabled", Some(Cell::Bool(false))),
            ("applicationid", text(super::CLIENT_ID)),
        ];
        records.seed_row(&SYSTEMUSER, app, 0, 0);
        for user in crate::accounts::account_users("dynamics") {
            let full = format!("{} {}", user.first_name, user.last_name);
            let row = [
                ("fullname", text(&full)),
                ("firstname", text(user.first_name)),
                ("lastname", text(user.last_name)),
                ("internalemailaddress", text(&user.email)),
                ("domainname", text(&user.email)),
                ("accessmode", Some(Cell::Int(0))),
                ("isdisabled", Some(Cell::Bool(!user.active))),
            ];
            records.seed_row(&SYSTEMUSER, row, 0, 0);
        }
        for (code, name, symbol, rate) in CURRENCIES {
            let row = [
                ("isocurrencycode", text(code)),
                ("currencyname", text(name)),
                ("currencysymbol", text(symbol)),
                ("currencyprecision", Some(Cell::Int(2))),
                ("exchangerate", Some(Cell::Num(*rate))),
            ];
            records.seed_row(&CURRENCY, row, 0, 0);
        }
        let process = [
            ("name", text(PROCESS_NAME)),
            ("uniquename", text("opportunitysalesprocess")),
            ("category", Some(Cell::Int(4))),
            ("primaryentity", text("opportunity")),
            ("statecode", Some(Cell::Int(1))),
        ];
        records.seed_row(&WORKFLOW, process, 0, 0);
        let process_id = records.guid_text(&WORKFLOW, 1);
        for (value, label) in SALES_STAGES {
            let row = [
                ("stagename", text(label)),
                ("stagecategory", Some(Cell::Int(*value))),
                ("processid", text(&process_id)),
                ("primaryentitytypecode", text("opportunity")),
            ];
            records.seed_row(&PROCESS_STAGE, row, 0, 0);
        }
        records
    }

    /// The GUID of row `id` of `set`.
    pub fn guid(&self, set: &Set, id: u64) -> u128 {
        (u128::from(set.prefix) << 96) | (u128::from(self.salt) << 64) | u128::from(id)
    }

    /// The GUID of row `id` of `set`, as text.
    pub fn guid_text(&self, set: &Set, id: u64) -> String {
        guid(self.guid(set, id))
    }

    /// The row id a GUID of `set` stands for, if it is one of this environment's.
    pub fn row_id(&self, set: &Set, guid: u128) -> Option<u64> {
        let prefix = u32::try_from(guid >> 96).ok()?;
        let salt = u32::try_from((guid >> 64) & 0xffff_ffff).ok()?;
        (prefix == set.prefix && salt == self.salt).then_some(guid as u64)
    }

    /// The table of `set`.
    pub fn table(&self, set: &Set) -> &Table {
        // Every set is added in `new`.
        self.tables
            .get(set.set)
            .unwrap_or_else(|| unreachable!("table {} is created with the store", set.set))
    }

    fn table_mut(&mut self, set: &Set) -> &mut Table {
        self.tables
            .get_mut(set.set)
            .unwrap_or_else(|| unreachable!("table {} is created with the store", set.set))
    }

    /// The live row of `set` with GUID `guid`.
    pub fn get(&self, set: &Set, guid: u128) -> Option<&Row> {
        self.table(set).get(self.row_id(set, guid)?)
    }

    /// The live row of `set` whose `ferry_sourceid` is `key` (case ignored).
    pub fn by_key(&self, set: &Set, key: &str) -> Option<&Row> {
        let column = set.column(KEY_COLUMN)?;
        self.table(set).find(column, key)
    }

    fn next_version(&mut self) -> i64 {
        self.version += 1;
        self.version
    }

    /// Adds a row of configuration or seed data as given (the caller built valid values);
    /// returns its id, or `None` if a value did not fit its column.
    pub fn seed_row(
        &mut self,
        set: &Set,
        values: impl IntoIterator<Item = (&'static str, Option<Cell>)>,
        created_ms: i64,
        modified_ms: i64,
    ) -> Option<u64> {
        let mut cells: Vec<(usize, Option<Cell>)> = values
            .into_iter()
            .filter_map(|(name, cell)| Some((set.column(name)?, cell)))
            .collect();
        if let Some(at) = set.column("versionnumber") {
            cells.push((at, Some(Cell::Int(self.next_version()))));
        }
        let table = self.table_mut(set);
        let checked = table.prepare(None, cells, true).ok()?;
        Some(table.insert_checked(checked, created_ms, modified_ms))
    }

    /// The user GUIDs of the seed's users ([`crate::accounts::USERS`] keys) this environment
    /// has, by key.
    pub fn users_by_key(&self) -> Vec<Option<u128>> {
        let mut out = vec![None; crate::accounts::USERS.len()];
        // Users were added after the application user (row 1), in `account_users` order.
        for (n, user) in crate::accounts::account_users("dynamics")
            .iter()
            .enumerate()
        {
            if let Some(slot) = out.get_mut(user.key) {
                *slot = Some(self.guid(&SYSTEMUSER, n as u64 + 2));
            }
        }
        out
    }

    /// The application user's GUID (the caller of every request).
    pub fn app_user(&self) -> u128 {
        self.guid(&SYSTEMUSER, 1)
    }

    /// The GUID text of the currency with ISO code `code`.
    pub fn currency(&self, code: &str) -> Option<String> {
        CURRENCIES
            .iter()
            .position(|c| c.0.eq_ignore_ascii_case(code))
            .map(|at| self.guid_text(&CURRENCY, at as u64 + 1))
    }

    /// The GUID text of the `processstage` of sales stage `value`.
    pub fn stage(&self, value: i64) -> Option<String> {
        let at = SALES_STAGES.iter().position(|s| s.0 == value)?;
        Some(self.guid_text(&PROCESS_STAGE, at as u64 + 1))
    }

    /// Checks that `guid` is a user who may own records: 404 if there is none, 400 if the user
    /// is disabled.
    pub fn check_owner(&self, guid: u128) -> Result<(), ApiError> {
        let row = self
            .get(&SYSTEMUSER, guid)
            .ok_or_else(|| ApiError::does_not_exist("systemuser", guid))?;
        let disabled = SYSTEMUSER
            .column("isdisabled")
            .and_then(|c| row.get(c))
            .is_some_and(|c| *c == Cell::Bool(true));
        if disabled {
            return Err(ApiError::disabled_user(guid));
        }
        Ok(())
    }

    /// Stamps the first `n` live rows of `set` (in key order) as modified at `now`, cells
    /// untouched; returns their GUIDs.
    pub fn touch_first(&mut self, set: &Set, n: usize, now: i64) -> Vec<u128> {
        let ids: Vec<u64> = self
            .table(set)
            .iter(crate::table::Show::Live)
            .take(n)
            .map(|r| r.id)
            .collect();
        let table = self.table_mut(set);
        ids.iter().for_each(|id| {
            table.touch(*id, now);
        });
        ids.iter().map(|id| self.guid(set, *id)).collect()
    }

    /// Stamps every `every_nth` live row of `set` (in key order) as modified at `now`, cells
    /// untouched; returns how many.
    pub fn touch_every(&mut self, set: &Set, every_nth: usize, now: i64) -> usize {
        let ids: Vec<u64> = self
            .table(set)
            .iter(crate::table::Show::Live)
            .map(|r| r.id)
            .collect();
        let table = self.table_mut(set);
        crate::every_nth(ids.len(), every_nth)
            .filter(|at| table.touch(ids[*at], now))
            .count()
    }

    /// Deletes row `id` of `set` and what Dataverse deletes with it: an opportunity's notes.
    pub fn delete(&mut self, set: &Set, id: u64, now: i64) -> Result<(), TableError> {
        let guid = self.guid_text(set, id);
        self.table_mut(set).archive(id, now)?;
        self.parent_deleted(&guid, now);
        Ok(())
    }

    /// What happens to rows pointing at a deleted record `guid` (lower-case text; GUIDs of
    /// different tables never collide):
    /// `customerid` and `objectid` cascade (the opportunity or note is deleted, an
    /// opportunity's notes with it), `parentaccountid` / `parentcontactid` are cleared
    /// (RemoveLink), as the relationships' cascade settings say.
    pub fn parent_deleted(&mut self, guid: &str, now: i64) {
        let opportunities = self.table(&OPPORTUNITY);
        let column = |name: &str| OPPORTUNITY.column(name).unwrap_or(usize::MAX);
        let (customer, account, contact) = (
            column("customerid"),
            column("parentaccountid"),
            column("parentcontactid"),
        );
        let holds = |r: &Row, c: usize| r.get(c).and_then(Cell::as_str) == Some(guid);
        let mut cascade = Vec::new();
        let mut unlink = Vec::new();
        for row in opportunities.iter(crate::table::Show::Live) {
            if holds(row, customer) {
                cascade.push(row.id);
            } else if holds(row, account) || holds(row, contact) {
                unlink.push(row.id);
            }
        }
        let version = OPPORTUNITY.column("versionnumber").unwrap_or(usize::MAX);
        for id in unlink {
            let v = self.next_version();
            let mut cells = vec![(version, Some(Cell::Int(v)))];
            for c in [account, contact] {
                if self
                    .table(&OPPORTUNITY)
                    .get(id)
                    .is_some_and(|r| holds(r, c))
                {
                    cells.push((c, None));
                }
            }
            let _ = self.table_mut(&OPPORTUNITY).update(id, cells, now, true);
        }
        for id in cascade {
            let _ = self.delete(&OPPORTUNITY, id, now);
        }
        let object = ANNOTATION.column("objectid").unwrap_or(usize::MAX);
        let notes: Vec<u64> = self
            .table(&ANNOTATION)
            .iter(crate::table::Show::Live)
            .filter(|r| holds(r, object))
            .map(|r| r.id)
            .collect();
        for id in notes {
            let _ = self.table_mut(&ANNOTATION).archive(id, now);
        }
    }

    /// Stamps a new row version on a write's cells.
    pub fn versioned(&mut self, set: &Set, cells: &mut Vec<(usize, Option<Cell>)>) {
        if let Some(at) = set.column("versionnumber") {
            let v = self.next_version();
            cells.push((at, Some(Cell::Int(v))));
        }
    }
}

/// Parses an ISO-8601 date-time (`2024-01-02T03:04:05Z`, optional fraction, `Z` or `±hh:mm`)
/// into epoch milliseconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let date = s.get(..10).filter(|d| crate::table::is_date(d))?;
    let rest = s.get(10..)?.strip_prefix('T')?;
    let num = |t: &str| t.parse::<i64>().ok();
    let (y, m, d) = (num(&date[0..4])?, num(&date[5..7])?, num(&date[8..10])?);
    let (hh, mm, ss) = (
        num(rest.get(0..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    if rest.get(2..3) != Some(":") || rest.get(5..6) != Some(":") || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut tail = &rest[8..];
    let mut millis = 0;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = num(&ms)?;
        tail = &frac[digits..];
    }
    let offset = match tail {
        "Z" | "" => 0,
        t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) && &t[3..4] == ":" => {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            sign * (num(&t[1..3])? * 60 + num(&t[4..6])?)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss - offset * 60) * 1000) + millis)
}

/// Converts a JSON value written to column `c` of `set` into a cell, as the Web API
/// deserialises and validates it.
pub fn convert(set: &Set, c: &Col, value: &Json) -> Result<Option<Cell>, ApiError> {
    if value.is_null() {
        return Ok(match c.dv {
            Dv::Bool => Some(Cell::Bool(false)),
            _ => None,
        });
    }
    let mismatch = |edm: &str| ApiError::literal_mismatch(set, value, edm);
    Ok(Some(match c.dv {
        Dv::Text(max) | Dv::Memo(max) => {
            let s = value.as_str().ok_or_else(|| mismatch("Edm.String"))?;
            if s.chars().count() > max {
                return Err(ApiError::too_long(set, c.name, max));
            }
            if s.is_empty() {
                return Ok(None);
            }
            Cell::Text(s.into())
        }
        Dv::Money => {
            let n = value.as_f64().ok_or_else(|| mismatch("Edm.Decimal"))?;
            if !(-MONEY_MAX..=MONEY_MAX).contains(&n) {
                return Err(ApiError::out_of_range(
                    set,
                    c.name,
                    value,
                    &format!("{}", -MONEY_MAX),
                    &format!("{MONEY_MAX}"),
                ));
            }
            Cell::Num((n * 100.0).round() / 100.0)
        }
        Dv::Int(min, max) => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if n < min || n > max {
                return Err(ApiError::out_of_range(
                    set,
                    c.name,
                    value,
                    &min.to_string(),
                    &max.to_string(),
                ));
            }
            Cell::Int(n)
        }
        Dv::Choice(_, options) => {
            let n = value.as_i64().ok_or_else(|| mismatch("Edm.Int32"))?;
            if !options.iter().any(|o| o.0 == n) {
                return Err(ApiError::bad_choice(set, c.name, n));
            }
            Cell::Int(n)
        }
        Dv::Date => {
            let s = value
                .as_str()
                .filter(|s| crate::table::is_date(s))
                .ok_or_else(|| mismatch("Edm.Date"))?;
            Cell::Text(s.into())
        }
        Dv::DateTime => {
            let ms = value
                .as_str()
                .and_then(parse_datetime)
                .ok_or_else(|| mismatch("Edm.DateTimeOffset"))?;
            Cell::Time(ms)
        }
        Dv::Bool => Cell::Bool(value.as_bool().ok_or_else(|| mismatch("Edm.Boolean"))?),
        // Lookups are written through their navigation property, never by value.
        Dv::Lookup(_) | Dv::EntityName => return Err(ApiError::unknown_property(set, c.name)),
    }))
}

/// Whether `name` is a readable property of `set`: its columns (lookups as `_x_value`), the
/// primary key and the system timestamps.
pub fn is_property(set: &Set, name: &str) -> bool {
    if name == set.id_column || name == "createdon" || name == "modifiedon" {
        return true;
    }
    if let Some(lookup) = name
        .strip_prefix('_')
        .and_then(|n| n.strip_suffix("_value"))
    {
        return set
            .columns
            .iter()
            .any(|c| c.name == lookup && matches!(c.dv, Dv::Lookup(_)));
    }
    set.columns
        .iter()
        .any(|c| c.name == name && !matches!(c.dv, Dv::Lookup(_)))
}

/// The property names a `GET` without `$select` returns.
pub fn all_properties(set: &Set) -> Vec<String> {
    let mut all: Vec<String> = set
        .columns
        .iter()
        .map(|c| match c.dv {
            Dv::Lookup(_) => format!("_{}_value", c.name),
            _ => c.name.to_owned(),
        })
        .collect();
    all.extend(["createdon".to_owned(), "modifiedon".to_owned()]);
    all
}

/// The value of property `name` of `row`.
pub fn property(records: &Records, set: &Set, row: &Row, name: &str) -> Json {
    if name == set.id_column {
        return Json::String(records.guid_text(set, row.id));
    }
    match name {
        "createdon" => return Json::String(super::odata::iso(row.created_ms)),
        "modifiedon" => return Json::String(super::odata::iso(row.modified_ms)),
        _ => {}
    }
    let column = name
        .strip_prefix('_')
        .and_then(|n| n.strip_suffix("_value"))
        .unwrap_or(name);
    match set.column(column).and_then(|at| row.get(at)) {
        None => Json::Null,
        Some(Cell::Text(s)) => Json::String(s.to_string()),
        Some(Cell::Int(n)) => json!(n),
        Some(Cell::Num(n)) => json!(n),
        Some(Cell::Bool(b)) => Json::Bool(*b),
        Some(Cell::Time(ms)) => Json::String(super::odata::iso(*ms)),
        Some(Cell::Ref(id)) => json!(id),
    }
}

/// Renders `row` with the selected properties, its id and its ETag.
pub fn render(records: &Records, set: &Set, row: &Row, select: &[String]) -> Json {
    let mut out = Map::new();
    let version = set
        .column("versionnumber")
        .and_then(|c| row.get(c))
        .and_then(|c| match c {
            Cell::Int(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0);
    out.insert(
        "@odata.etag".into(),
        Json::String(format!("W/\"{version}\"")),
    );
    for name in select {
        out.insert(name.clone(), property(records, set, row, name));
    }
    out.insert(
        set.id_column.into(),
        Json::String(records.guid_text(set, row.id)),
    );
    Json::Object(out)
}

/// The row version of `row` (its ETag).
pub fn version_of(set: &Set, row: &Row) -> Option<i64> {
    match set.column("versionnumber").and_then(|c| row.get(c)) {
        Some(Cell::Int(n)) => Some(*n),
        _ => None,
    }
}
