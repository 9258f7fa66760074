//! Every route module registers itself here.

pub mod admin;
pub mod auth;
pub mod me;
pub mod ops;
pub mod streams;
pub mod tasks;

pub fn config(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.configure(ops::config)
        .configure(auth::config)
        .configure(me::config)
        .configure(admin::config)
        .configure(tasks::config)
        .configure(streams::config);
}
