"""AU files -> the canonical frames table: schema, OpenFace reader, mapped-tool readers, the folder reader and its
cache."""
