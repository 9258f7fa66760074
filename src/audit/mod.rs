pub mod causes;
pub mod chain;
pub mod export;
pub mod state;
