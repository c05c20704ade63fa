// The client's side of dispatcher/v1/analytics.proto: metric series, fleet summary and usage reports.
import { AnalyticsServiceService, FleetSummaryRequest, QueryServerMetricsRequest, ReportUsageRequest } from "../../gen/proto/dispatcher/v1/analytics.js";

export const analytics = { definition: AnalyticsServiceService, requests: { queryServerMetrics: QueryServerMetricsRequest, fleetSummary: FleetSummaryRequest, reportUsage: ReportUsageRequest } };
