using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Models;

/// <summary>
/// Reads a config value that diffusers allows to be one value or a list of them (<c>sample_size</c>: <c>32</c> or
/// <c>[32, 48]</c>) into an array; a one-element array is written back as the bare value. A kind of value is a subclass
/// saying how one value is read and written (<see cref="IntOrIntArrayJsonConverter"/>, <see cref="BoolOrBoolArrayJsonConverter"/>).
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
internal abstract class ScalarOrArrayJsonConverter<T> : JsonConverter<T[]?>
{
    /// <summary>What a list element must be, for errors ("an integer").</summary>
    protected abstract string Element { get; }

    /// <summary>What the whole value must be, for errors ("an integer or a list of integers").</summary>
    protected abstract string Expected { get; }

    /// <summary>Reads the value at the reader's token, or returns false when the token is not one.</summary>
    protected abstract bool TryRead(ref Utf8JsonReader reader, out T value);

    /// <summary>Writes one value.</summary>
    protected abstract void WriteValue(Utf8JsonWriter writer, T value);

    public sealed override bool HandleNull => true;

    public sealed override T[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        if (reader.TokenType != JsonTokenType.StartArray)
            return TryRead(ref reader, out T single) ? [single] : throw new JsonException($"expected {Expected}, got {reader.TokenType}");
        var list = new List<T>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (!TryRead(ref reader, out T value)) throw new JsonException($"expected {Element} in the list, got {reader.TokenType}");
            list.Add(value);
        }
        return [.. list];
    }

    public sealed override void Write(Utf8JsonWriter writer, T[]? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else if (value.Length == 1) WriteValue(writer, value[0]);
        else
        {
            writer.WriteStartArray();
            foreach (var v in value) WriteValue(writer, v);
            writer.WriteEndArray();
        }
    }
}
