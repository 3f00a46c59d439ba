"""Pictures people would rather look at than read: label maps, composite SEDs,
embeddings. Functions take arrays/tables and return matplotlib Figures."""
