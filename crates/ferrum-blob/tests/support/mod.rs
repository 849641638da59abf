//! Fixtures shared by the test binaries.

pub mod s3s_fs;
pub mod temp_dir;
