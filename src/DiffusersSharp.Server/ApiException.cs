using System.Text.Json.Nodes;

namespace DiffusersSharp.Server;

/// <summary>A refused API request: the HTTP status and OpenAI's error shape (<c>{"error": {"message", "type", "param", "code"}}</c>).</summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    /// <summary>The HTTP status (400, 401, 404, 429 …).</summary>
    public int Status { get; } = status;

    /// <summary>The request field at fault, when one is.</summary>
    public string? Param { get; } = param;

    /// <summary>A short machine-readable reason (<c>model_not_found</c>, <c>queue_full</c> …).</summary>
    public string? Code { get; } = code;

    /// <summary>Seconds to wait before retrying (429).</summary>
    public int? RetryAfter { get; init; }

    /// <summary>The error body in OpenAI's shape.</summary>
    public JsonObject ToJson() => Body(Message, Status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    }, Param, Code);

    /// <summary>OpenAI's error body.</summary>
    public static JsonObject Body(string message, string type, string? param = null, string? code = null) => new()
    {
        ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = param, ["code"] = code },
    };
}
