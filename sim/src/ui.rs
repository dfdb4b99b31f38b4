//! The live page at `/_replica/ui`: plain HTML, CSS and JS embedded in the binary.

pub const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>replica-sim</title></head><body><h1>replica-sim</h1><p>State: <a href=\"/_replica/v1/state\">/_replica/v1/state</a></p></body></html>";
