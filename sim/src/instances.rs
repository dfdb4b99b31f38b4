//! Every served instance of a class, whichever module renders it: association classes come
//! from [`crate::assoc`] (which finds their two ends through [`crate::classes`]), every other
//! class from [`crate::classes`]. Dispatch, WQL and enumeration ask here, so that `classes`
//! never has to call back into `assoc` (the two used to form a module cycle).

use crate::schema::{self, Served};
use crate::wsman::writer::{self, Instance, ReplyHeader};
use crate::{assoc, classes};
use replica_core::World;

fn is_association(class: &str) -> bool {
    schema::def(class).is_some_and(|d| d.served == Served::Association)
}

/// The class's instances one at a time (see [`classes::iter_instances`]).
pub fn iter_instances<'a>(
    world: &'a World,
    host: &str,
    class: &str,
) -> Box<dyn Iterator<Item = Instance> + 'a> {
    if is_association(class) {
        Box::new(assoc::association_instances(world, host, class).into_iter())
    } else {
        classes::iter_instances(world, host, class)
    }
}

/// The class's instances, all of them, in a stable order.
pub fn instances(world: &World, host: &str, class: &str) -> Vec<Instance> {
    iter_instances(world, host, class).collect()
}

/// The instance a selector set names (see [`classes::find`]); an association instance is
/// named by the references to its two ends.
pub fn find(
    world: &World,
    host: &str,
    class: &str,
    selectors: &[(String, String)],
) -> Option<Found> {
    if is_association(class) {
        assoc::association_instances(world, host, class)
            .into_iter()
            .find(|i| classes::matches_selectors(i, selectors))
            .map(Found::Built)
    } else {
        classes::find_rendered(world, host, class, selectors).map(Found::Rendered)
    }
}

/// An instance [`find`] found: an association's, built by `assoc`, or any other, not yet
/// built (see [`classes::Rendered`]).
pub enum Found {
    Built(Instance),
    Rendered(classes::Rendered),
}

impl Found {
    /// The text of a property ([`classes::prop_text`]).
    pub fn text(&self, name: &str) -> Option<String> {
        match self {
            Found::Built(i) => classes::prop_text(i, name),
            Found::Rendered(r) => r.text(name),
        }
    }

    /// The WS-Transfer GetResponse carrying the instance.
    pub fn get_response(&self, h: &ReplyHeader<'_>) -> String {
        match self {
            Found::Built(i) => writer::get_response(h, i),
            Found::Rendered(r) => r.get_response(h),
        }
    }
}
