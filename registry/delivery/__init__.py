"""Delivery (SPEC §2, §4, §7): snapshot structs and their wire codec, the publisher
of the snapshot stream and final file, the subscriber, atomic file writes, final-file
sourcing and the run lock of an output directory. Nothing here decides a number."""
