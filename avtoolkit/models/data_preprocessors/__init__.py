# Modules of this family are imported here so that they register.
