// dispatcher.v1 QueueService over gRPC: validates requests, calls the queues service, maps answers to messages.
import {
  GetQueueStatsResponse,
  ListDeadLettersResponse,
  QueueServiceService as Q,
  ReplayDeadLetterResponse,
  type DeadLetter as DeadLetterMessage,
} from "../gen/proto/dispatcher/v1/queues.js";
import { IDEMPOTENCY_KEY_RULES, jobToProto } from "../jobs/mapper.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { afterIdFromToken, ID_RULES, nextToken, validateOne, Violations } from "../rpc/validate.js";
import type { DeadLetter, QueueService } from "./service.js";

const KIND_RULES = { max: 64, min: 0 };

export function queueHandlers(queues: QueueService): RpcService {
  return defineService(Q, {
    getQueueStats: unary(Q.getQueueStats, async () => {
      const s = await queues.stats();
      const ageMs = s.outbox.oldestAgeMs;
      return GetQueueStatsResponse.fromPartial({
        outbox: {
          backlog: String(s.outbox.backlog),
          oldestAge: { seconds: String(Math.floor(ageMs / 1000)), nanos: (ageMs % 1000) * 1_000_000 },
          failed: String(s.outbox.failed),
        },
        consumer: {
          stream: s.consumer.stream,
          consumer: s.consumer.consumer,
          present: s.consumer.present,
          streamMessages: String(s.consumer.streamMessages),
          pending: String(s.consumer.pending),
          ackPending: String(s.consumer.ackPending),
          redelivered: String(s.consumer.redelivered),
          waiting: String(s.consumer.waiting),
        },
        deadLetters: String(s.deadLetters),
        readTime: s.readAt,
      });
    }),

    listDeadLetters: unary(Q.listDeadLetters, async (req, ctx) => {
      const v = new Violations();
      const filters = { includeReplayed: req.includeReplayed === true, kind: v.optionalString("kind", req.kind, KIND_RULES) || undefined };
      const pageSize = v.pageSize("page_size", req.pageSize);
      const afterId = afterIdFromToken(v, req.pageToken, filters);
      v.check();
      const page = await queues.listDeadLetters(ctx.principal, { ...filters, pageSize, afterId });
      return ListDeadLettersResponse.fromPartial({ deadLetters: page.items.map(deadLetterToProto), nextPageToken: nextToken(page, filters) });
    }),

    replayDeadLetter: unary(Q.replayDeadLetter, async (req, ctx) => {
      const { id, key } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      const out = await queues.replayDeadLetter(ctx.principal, id, key || null);
      return ReplayDeadLetterResponse.fromPartial({ deadLetter: deadLetterToProto(out.deadLetter), job: jobToProto(out.job) });
    }),
  });
}

function deadLetterToProto(d: DeadLetter): DeadLetterMessage {
  return { id: d.id, jobId: d.jobId, kind: d.kind, attempt: d.attempt, lastError: d.lastError, createTime: d.createdAt, replayTime: d.replayedAt ?? undefined };
}
