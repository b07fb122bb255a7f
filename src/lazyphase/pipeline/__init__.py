"""Pipeline glue: grid expansion and configuration checks, jobs and devices, one function per
Snakemake rule, the code fingerprint and the command line. Imports every layer; nothing in the
package imports it."""
