//! kilnd: kiln's daemon and the processes it starts. It owns `$KILN_HOME` while it runs (the
//! single writer, DESIGN §1): the control API ([`daemon`]), serving over KServe v2
//! ([`serve`]), the job supervisor and its workers ([`worker`], [`evaluate`], [`import`]).
//! Every burn call lives in `kiln-engine`; this crate drives it.

pub mod alloc;
pub mod auth;
pub mod compress;
pub mod daemon;
pub mod epochs;
pub mod evaluate;
pub mod events;
pub mod import;
pub mod inspect;
pub mod predict;
pub mod serve;
pub mod signing;
pub mod worker;
