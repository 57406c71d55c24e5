# The image of the compose file's Spark master, worker and driver: Spark from the same pyspark
# that segjob[spark] installs, so the driver, the master and the executors share one version,
# with segjob and its packages for the executors' Python workers and PostgreSQL's JDBC driver.
FROM python:3.12-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java procps \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /segjob
COPY pyproject.toml README.md ./
COPY segjob ./segjob
COPY migrations ./migrations
COPY sql ./sql
RUN pip install --no-cache-dir ".[spark]"
ENV PYSPARK_PYTHON=python3 \
    SPARK_NO_DAEMONIZE=1
