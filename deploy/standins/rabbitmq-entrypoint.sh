#!/bin/bash
# Entry point of the RabbitMQ stand-in (scripts/compose-images.sh): the parts of the official
# image's contract that docker-compose.yml uses. RABBITMQ_DEFAULT_USER/PASS name the user
# made on first start; the node's data is in /var/lib/rabbitmq (the volume), under the node
# name rabbit@HOSTNAME, so the container needs a stable hostname to find its queues again.
set -euo pipefail

{
    echo "listeners.tcp.default = 5672"
    echo "loopback_users = none"
    echo "log.console = true"
    echo "log.file = false"
    if [[ -n ${RABBITMQ_DEFAULT_USER:-} ]]; then echo "default_user = $RABBITMQ_DEFAULT_USER"; fi
    if [[ -n ${RABBITMQ_DEFAULT_PASS:-} ]]; then echo "default_pass = $RABBITMQ_DEFAULT_PASS"; fi
} >/etc/rabbitmq/rabbitmq.conf
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq

exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
