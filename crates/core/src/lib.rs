//! ferry's engine: the canonical record model, the connector traits, the pipeline that moves
//! records between them, the shared HTTP layer, checksums and the run report.

pub mod batch;
pub mod checkpoint;
pub mod checksum;
pub mod connector;
pub mod consent;
pub mod currency;
pub mod deletions;
pub mod directory;
pub mod duplicates;
pub mod email;
pub mod error;
pub mod fieldplan;
pub mod fields;
pub mod http;
pub mod json;
pub mod kit;
pub mod model;
pub mod mx;
pub mod oauth;
pub mod owners;
pub mod phone;
pub mod pipeline;
pub mod quality;
pub mod quota;
pub mod redact;
pub mod report;
pub mod resend;
pub mod resolver;
pub mod richtext;
pub mod secret;
pub mod sensitive;
pub mod stages;
pub mod state_store;
pub mod sync;

pub use checksum::{AggregateDigest, Digest, Projection, record_digest};
pub use connector::{
    AccountId, Capability, DeletedPage, FetchedPage, FieldLimit, IdPage, Page, Pipeline,
    PipelineStage, RecordOutcome, RecordRejection, Removal, RemoveOutcome, Removed, Sink, Source,
    StageOutcome, User, Written,
};
pub use error::{ConnectorError, ConnectorResult};
pub use fields::{
    FieldBinding, FieldKind, FieldMap, FieldMaps, NewField, PicklistOption, VendorField,
};
pub use kit::{AccountSettings, ConnectorSpec, Permissions, Role};
pub use model::{
    Edge, FieldSpec, FieldType, ObjectType, OptOut, OrderError, Record, StageId, Value, field,
    write_order,
};
pub use pipeline::{Mode, RunOptions, run};
pub use report::{ErrorKind, Failure, Outcome, Progress, Report, Stage, UnmatchedOwner};
pub use secret::{SecretError, SecretRef};
pub use sync::Watermark;
