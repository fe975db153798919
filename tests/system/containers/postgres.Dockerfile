# A stand-in for Docker Hub's postgres:15-bookworm, which cannot be pulled here (no registry):
# Debian's postgresql-15 on the debootstrap image, with the same settings the compose file
# gives the official image (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, data in
# /var/lib/postgresql/data, pg_isready on the PATH). Only the container test uses it.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
