pub mod wsman;
