CREATE DATABASE subscriber;
