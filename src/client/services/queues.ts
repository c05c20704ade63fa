// The client's side of dispatcher/v1/queues.proto: outbox and consumer figures, dead letters and their replay.
import { GetQueueStatsRequest, ListDeadLettersRequest, QueueServiceService, ReplayDeadLetterRequest } from "../../gen/proto/dispatcher/v1/queues.js";

export const queues = { definition: QueueServiceService, requests: { getQueueStats: GetQueueStatsRequest, listDeadLetters: ListDeadLettersRequest, replayDeadLetter: ReplayDeadLetterRequest } };
