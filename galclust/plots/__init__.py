"""Pictures people would rather look at than read: cluster contours over colour
images, normalised composite SEDs, embeddings. Functions take arrays/tables and
return matplotlib Figures; :mod:`galclust.plots.naming` names their files and titles
after the galaxy, the method and options, and the run."""
