using System.Text.Json.Nodes;

namespace DiffusersSharp.Server;

/// <summary>
/// One server-sent event of a job: <see cref="Type"/> is the SSE event name (<c>queued</c>, <c>started</c>, <c>step</c>,
/// <c>preview</c>, <c>done</c>, <c>failed</c>, <c>cancelled</c>), <see cref="Data"/> its JSON payload.
/// </summary>
public sealed record JobEvent(string Type, JsonObject Data)
{
    /// <summary>True for the events that end a job (done, failed, cancelled).</summary>
    public bool IsFinal => Type is "done" or "failed" or "cancelled";

    /// <summary>The event in the SSE wire format (<c>event: …</c>, <c>data: …</c>, blank line).</summary>
    public string ToSse() => $"event: {Type}\ndata: {Data.ToJsonString()}\n\n";
}
