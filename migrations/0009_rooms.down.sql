DROP TABLE IF EXISTS room_messages, room_members, rooms;
