"""AU files -> the canonical frames table: schema, OpenFace reader, the AU tools as self-registering plug-ins
(``tools/``), their shared mapping types and reader, the folder reader and its cache."""
