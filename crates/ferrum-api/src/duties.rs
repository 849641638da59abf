//! Background duties every API replica runs.
