//! Clients that vanish or misbehave: every resource they held is released.
