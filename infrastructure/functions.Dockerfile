# The extract and clean Lambda functions (one image, two commands: see headwater.yaml).
# pandas + numpy + pyarrow are ~330 MB unpacked, over the 250 MB zip limit: an image it is.
#   docker build -f infrastructure/functions.Dockerfile -t headwater-functions .
FROM public.ecr.aws/lambda/python:3.13
COPY pyproject.toml README.md ${LAMBDA_TASK_ROOT}/src/
COPY headwater ${LAMBDA_TASK_ROOT}/src/headwater
COPY functions ${LAMBDA_TASK_ROOT}/src/functions
COPY config ${LAMBDA_TASK_ROOT}/config
RUN pip install --no-cache-dir "${LAMBDA_TASK_ROOT}/src/.[data]" "psycopg[binary]>=3.1,<4" \
        --target "${LAMBDA_TASK_ROOT}" \
    && rm -rf "${LAMBDA_TASK_ROOT}/src"
ENV HEADWATER_CONFIG_DIR=${LAMBDA_TASK_ROOT}/config
CMD ["functions.extract.lambda_handler"]
