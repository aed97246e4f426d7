using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Models;

/// <summary>
/// Reads a config value that diffusers allows to be a bool or a list of bools (e.g. <c>only_cross_attention</c>:
/// <c>false</c> or <c>[false, true]</c>) into a <c>bool[]</c>; a one-element array is written back as a bare
/// bool.
/// </summary>
internal sealed class BoolOrBoolArrayJsonConverter : JsonConverter<bool[]?>
{
    public override bool HandleNull => true;

    public override bool[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.True:
            case JsonTokenType.False:
                return new[] { reader.GetBoolean() };
            case JsonTokenType.StartArray:
                var list = new List<bool>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False))
                        throw new JsonException($"expected true or false in the list, got {reader.TokenType}");
                    list.Add(reader.GetBoolean());
                }
                return list.ToArray();
            default:
                throw new JsonException($"expected a bool or a list of bools, got {reader.TokenType}");
        }
    }

    public override void Write(Utf8JsonWriter writer, bool[]? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else if (value.Length == 1) writer.WriteBooleanValue(value[0]);
        else
        {
            writer.WriteStartArray();
            foreach (var v in value) writer.WriteBooleanValue(v);
            writer.WriteEndArray();
        }
    }
}
