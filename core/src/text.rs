//! Bounds on text that comes from clients. A refusal reason may quote a parameter of half a
//! megabyte; what the model keeps (reasons, job error descriptions) and what the simulator's
//! journal keeps is cut to a few hundred bytes, saying how much was cut.

/// The most bytes of a reason or an error description the model keeps.
pub const REASON_MAX: usize = 1024;

/// Cuts `s` to at most `max` bytes on a character boundary and appends how many were cut.
pub fn clip(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("… ({cut} bytes cut)"));
}

/// [`clip`] to [`REASON_MAX`], by value.
pub fn clipped(mut s: String) -> String {
    clip(&mut s, REASON_MAX);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_cuts_on_a_char_boundary() {
        let mut short = String::from("ReplicationInterval `A` is not a number");
        clip(&mut short, 64);
        assert_eq!(short, "ReplicationInterval `A` is not a number");
        let mut long = "é".repeat(100);
        clip(&mut long, 11);
        assert_eq!(long, "ééééé… (190 bytes cut)");
        assert_eq!(
            clipped("A".repeat(480_000)).len(),
            REASON_MAX + "… (478976 bytes cut)".len()
        );
    }
}
