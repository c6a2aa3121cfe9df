//! Row decoders shared by the PostgreSQL modules.
