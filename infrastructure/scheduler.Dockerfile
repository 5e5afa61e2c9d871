# The scheduler host: Luigi + the CLI + the AWS adapter, started daily by EventBridge
# as a Fargate task (see headwater.yaml). Training runs on EMR, so no Spark in here.
#   docker build -f infrastructure/scheduler.Dockerfile -t headwater-scheduler .
FROM python:3.13-slim
WORKDIR /opt/headwater
COPY pyproject.toml README.md ./
COPY headwater headwater
COPY functions functions
COPY luigi_tasks luigi_tasks
COPY cli cli
COPY emr_jobs emr_jobs
COPY api api
COPY config config
RUN pip install --no-cache-dir ".[orchestration]" "psycopg[binary]>=3.1,<4"
ENV HEADWATER_CONFIG_DIR=/opt/headwater/config \
    HEADWATER_RUN__STATE_DIR=/var/lib/headwater/runs
# Logs and run records are per task (CloudWatch gets stdout); the lake holds the state.
RUN mkdir -p /var/log/headwater /var/lib/headwater \
    && chown nobody /var/log/headwater /var/lib/headwater
WORKDIR /var/lib/headwater
USER nobody
CMD ["headwater", "run", "--stage", "prod", "--start", "today-365", "--end", "yesterday"]
